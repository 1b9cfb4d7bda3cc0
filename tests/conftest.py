"""Collection rules shared by the test suite.

``tests/browser`` checks the *built* book (``_build/html``) in headless Chromium; it runs after
``make book``, as ``make browser-check`` (which sets ``REIDLIB_BROWSER_CHECK=1``), not as part of
``pytest tests`` -- the unit tests run before any book is built (and, in CI, beside its build).
"""

import os

collect_ignore = [] if os.environ.get("REIDLIB_BROWSER_CHECK") else ["browser"]
