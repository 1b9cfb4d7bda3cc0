"""reidlib.eval"""
