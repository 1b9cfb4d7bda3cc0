"""reidlib.losses"""
