"""reidlib.metrics"""
