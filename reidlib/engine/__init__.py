"""reidlib.engine"""
