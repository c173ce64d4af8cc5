"""The memory-augmented GAN that turns composited renders into realistic frames (REFERENCE.md).

generator.py      MemoryGenerator: AdaIN U-Net on a 3-frame window, colour + attention heads;
                  to_gan / from_gan between the package's [0, 1] and the GAN's [-1, 1]
discriminator.py  PatchDiscriminator: conditional 70x70 PatchGAN on window + image
memory.py         Memory: key-value identity memory (read, triplet loss, update, test-time reads)
identity.py       identity encoders ("learned", "arcface") and the memory's KeyEncoder
losses.py         vanilla GAN, L1 and attention-mask losses
"""
