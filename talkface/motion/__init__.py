"""Audio -> expression + head pose (the original's ATC-net, docs/method.md, "Audio to motion").

Every stage package has the same roles: model.py (the network and its build / load from a checkpoint),
data.py (what training reads), train.py (the Task, pretrain / finetune), inference.py (the trained
stage on new input; it imports no training module); the other modules are parts these use.

network.py      AudioToMotion: per-frame CNN on 28x12 MFCC windows, 3-layer LSTM, 70 outputs; target encoding
model.py        its name in checkpoints and `load_motion_model`
records.py      the compact per-clip LRW record and the cache manifest (written by `talkface lrw preprocess`)
data.py         LRW records and person workspaces as clips; 16-frame training sequences
losses.py       MSE on expression and pose plus temporal smoothness
validation.py   MotionValidation: held-out sequences scored by loss, expression MSE, LMD
calibration.py  the person's pose calibration and rhythm, fitted into a fine-tuned checkpoint
train.py        MotionTask, `pretrain` and `finetune` on the shared trainer
activity.py     per-frame speech activity of the audio, the gate of the sampled head rhythm
inference.py    streamed prediction over long audio, the pose / expression controls, projected landmarks
"""
