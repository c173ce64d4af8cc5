"""The memory-augmented GAN that turns composited renders into realistic frames (docs/method.md).

Every stage package has the same roles: model.py (the network and its build / load from a checkpoint),
data.py (what training reads), train.py (the Task, pretrain / finetune), inference.py (the trained
stage on new input; it imports no training module); the other modules are parts these use.

generator.py      MemoryGenerator: AdaIN U-Net on a 3-frame window, colour + attention heads;
                  to_gan / from_gan between the package's [0, 1] and the GAN's [-1, 1]
discriminator.py  PatchDiscriminator: conditional 70x70 PatchGAN on window + image
memory.py         Memory: key-value identity memory (read, triplet loss, update, test-time reads)
identity.py       identity encoders ("learned", "arcface": talkface/arcface.py) and the memory's KeyEncoder
model.py          what a GAN checkpoint holds, build / rebuild, the test-time IdentityStream
pairs.py          training pairs of a clip: its own coefficients rendered over its frames (renders.npy)
data.py           GanPairs: (render window, real frame, identity frame) items over clips' frame ranges
losses.py         vanilla GAN, L1 and attention-mask losses
validation.py     GanValidation: held-out clips through the test-time path, PSNR / SSIM
train.py          GanTask, `pretrain` and `finetune` on the shared trainer
inference.py      load_enhancer / FrameEnhancer: batched, streamed inference
"""
