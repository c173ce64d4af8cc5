"""Backgrounds for the rendered face: keyframe matching, compositing, paste-back (REFERENCE.md).

keyframes.py  keyframes of the predicted pose, the real frame behind each output frame, pose modes
composite.py  hole-filled alpha compositing over that frame; the GAN's 3-frame input windows
paste.py      the refined face back into the full-resolution frame (feathered or Poisson)
"""
