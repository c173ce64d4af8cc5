"""(placeholder replaced by the media work)"""

def register(subparsers):
    pass
