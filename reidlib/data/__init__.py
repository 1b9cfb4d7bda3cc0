"""reidlib.data"""
