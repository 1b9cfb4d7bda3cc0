"""reidlib.viz"""
