"""Backgrounds for the rendered face: keyframe matching, rendering, compositing, paste-back (docs/method.md).

No network and no training of its own: every module here is inference, used by pipelines/infer.py
and by the GAN's training pairs (gan/pairs.py); the face is drawn by render/renderer.py.

keyframes.py     keyframes of the predicted pose, the real frame behind each output frame, pose modes
animation.py     the person's coefficients with the predicted motion, rendered (render.render through
                 each matched frame's crop -> window map, 256 px), composited, windowed for the GAN, in chunks
single_image.py  one photo as the target: its crop behind every frame, the pose kept near the photo's
                 (and what degrades without a clip)
composite.py     hole-filled alpha compositing over that frame; the GAN's 3-frame input windows
paste.py         the refined face back into the full-resolution frame (feathered or Poisson)

Typical use, from a person workspace and predicted motion [T, 70]:

    target = load_target(workspace)
    plan = plan_animation(target, motion, mode="reassign")   # or plan_single_image(target.frame(0), motion)
    for chunk in animate(target, plan, model):               # chunk.gan_input [B, 9, 256, 256]
        ...
"""
