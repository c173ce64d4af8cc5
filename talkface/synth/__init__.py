"""The synthetic world: generated talking subjects with known ground truth (DESIGN.md).

speech.py speaks random sentences in a per-subject voice; motion.py turns speech into expression
and head pose with a per-subject style. The appearance side renders them into frames.
"""
