"""The synthetic world: generated talking subjects with known ground truth.

speech.py speaks random sentences in a per-subject voice and reports what it said when
(phones.py); variety.py varies the voice, engine and room per clip; motion.py turns speech into
expression and head pose with a per-subject style, the mouth articulating the phones (talkface/speech/visemes.py).
The appearance side renders them into frames.
"""
