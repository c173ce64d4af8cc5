"""3D reconstruction of a clip: 68 landmarks per frame, 5-point alignment, and the R-Net.

Every stage package has the same roles: model.py (the network and its build / load from a checkpoint),
data.py (what training reads), train.py (the Task, pretrain / finetune), inference.py (the trained
stage on new input; it imports no training module); the other modules are parts these use.

landmarks.py       the landmark backends ("auto", "fan", "dlib", "file")
dlib_landmarks.py  the "dlib" backend: HOG detector + iBUG 68-point predictor, one face tracked
track.py           the landmark pixel convention, gaps, smoothing
alignment.py       5 points, the POS fit, 224x224 aligned crops
window.py          the fixed per-clip window and its file, window.json
model.py           the R-Net: ResNet-50 coefficient regressor, loadable from Deep3DFaceRecon checkpoints
data.py            AlignedFrames: aligned crops and landmarks of workspaces and clips
losses.py          the R-Net's self-supervised losses (photometric, landmarks, priors, identity)
train.py           ReconTask and `train_rnet` on the shared trainer (`talkface recon train`)
inference.py       a clip's coefficients: R-Net per frame, then the whole-clip refinement
"""
