"""3D reconstruction of a clip: 68 landmarks per frame, 5-point alignment, and the R-Net.

landmarks.py  the landmark pixel convention, the backends ("auto", "fan", "dlib", "file"), gaps, smoothing
dlib_landmarks.py  the "dlib" backend: HOG detector + iBUG 68-point predictor, one face tracked
alignment.py  5 points, the POS fit, 224x224 aligned crops and the fixed per-clip window
rnet.py       the ResNet-50 coefficient regressor, loadable from Deep3DFaceRecon checkpoints
losses.py     the R-Net's self-supervised losses (photometric, landmarks, priors, identity)
train.py      the R-Net training stage for the shared Trainer (`talkface recon train`)
fitting.py    a clip's coefficients: R-Net per frame, then the whole-clip refinement
"""
