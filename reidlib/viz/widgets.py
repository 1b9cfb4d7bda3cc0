"""The "ipywidget + static fallback" pattern shared by every interactive figure of the book.

A rendered book page has no kernel: an ipywidget there shows as nothing (or "loading").
So every interactive cell shows the **static matplotlib figure of the widget's default
state first**, then the widget.  In Jupyter both appear and the widget works; in the
book the static figure carries the content.

>>> show_interactive(lambda: make_browser(), lambda: plot_default_state())

Widget factories should not draw into an ``ipywidgets.Output`` while they are built (draw
on the first interaction instead): the static figure already shows the default state, and
output captured by an Output widget during a headless run (papermill / nbclient) can stall
the execution (jupyter/nbclient#312-like hangs, seen here about one run in four).
"""

from __future__ import annotations

import os
from typing import Any, Callable

__all__ = ["show_interactive", "has_ipywidgets", "display_figure", "STATIC_ENV"]

#: Set to ``"1"`` (the book build and nbval do) to show only the static figures: a widget has
#: no kernel in the rendered book anyway, and building one during a headless execution is
#: where stalls happened.  Readers running a notebook in Jupyter get the widgets.
STATIC_ENV = "REIDLIB_STATIC_WIDGETS"


def has_ipywidgets() -> bool:
    try:
        import ipywidgets  # noqa: F401
    except ImportError:
        return False
    return True


def display_figure(fig) -> None:
    """Display a matplotlib figure once (rich output in IPython, nothing else) and close it."""
    import matplotlib.pyplot as plt

    try:
        from IPython.display import display

        display(fig)
    except ImportError:  # pragma: no cover - IPython is a dependency of the book
        pass
    plt.close(fig)


def show_interactive(widget_factory: Callable[[], Any], static_fig_fn: Callable[[], Any], *,
                     widget: bool = True) -> Any:
    """Show ``static_fig_fn()`` (a matplotlib figure of the default state), then the widget.

    Args:
        widget_factory: builds the ipywidget (called only when ipywidgets is installed).
        static_fig_fn: returns a ``matplotlib.figure.Figure`` of the widget's default state.
        widget: set False to show the static figure only (also forced by the environment
            variable :data:`STATIC_ENV` = ``"1"``, set by the book build).

    Returns:
        The widget, or None when it was not built.  The static figure is closed after display
        (so that the inline backend does not show it twice).
    """
    fig = static_fig_fn()
    if fig is None or not hasattr(fig, "savefig"):
        raise TypeError(f"static_fig_fn must return a matplotlib Figure, got {type(fig).__name__}")
    display_figure(fig)
    if widget and os.environ.get(STATIC_ENV) == "1":
        try:
            from IPython.display import Markdown, display

            display(Markdown("*Run this notebook in Jupyter for the interactive version of this figure.*"))
        except ImportError:  # pragma: no cover
            pass
        return None
    if not widget or not has_ipywidgets():
        return None
    w = widget_factory()
    try:
        from IPython.display import display

        display(w)
    except ImportError:  # pragma: no cover
        pass
    return w
