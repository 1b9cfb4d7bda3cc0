"""reidlib.models"""
