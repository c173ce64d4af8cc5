"""Memory GAN parts: generator, PatchGAN, memory, identity encoders, losses (tiny sizes, CPU)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from talkface.arcface import ARCFACE_TEMPLATE, ArcFaceEncoder, align_arcface
from talkface.errors import ConfigError, MissingWeightsError, TalkfaceError
from talkface.gan.discriminator import PatchDiscriminator
from talkface.gan.generator import MemoryGenerator, from_gan, to_gan
from talkface.gan.identity import KeyEncoder, make_identity_encoder
from talkface.gan.losses import discriminator_loss, generator_loss
from talkface.gan.memory import Memory

SIZE, NGF, LEVELS = 64, 8, 6  # tiny but the full code path: 6 of the 8 levels at 64 px


def unit(*shape: int) -> torch.Tensor:
    return F.normalize(torch.randn(*shape), dim=-1)


@pytest.fixture(scope="module")
def window() -> torch.Tensor:
    torch.manual_seed(0)
    return torch.rand(2, 9, SIZE, SIZE) * 2 - 1  # [B, 9, H, W] in [-1, 1]


# ---------------------------------------------------------------- generator


@pytest.mark.parametrize("mapping", ["light", "original"])
def test_generator_shapes_ranges_and_blend(window, mapping):
    torch.manual_seed(1)
    net = MemoryGenerator(ngf=NGF, levels=LEVELS, mapping=mapping)
    out = net(window, unit(2, 512))
    assert out.image.shape == (2, 3, SIZE, SIZE)
    assert out.mask.shape == (2, 1, SIZE, SIZE)
    assert out.color.shape == (2, 3, SIZE, SIZE)
    assert out.color.abs().max() <= 1 and 0 <= out.mask.min() and out.mask.max() <= 1
    assert out.image.abs().max() <= 1
    # the blend uses the current frame t: channels 0:3 of the window
    assert torch.equal(out.image, out.mask * window[:, :3] + (1 - out.mask) * out.color)


def test_generator_layout_follows_the_original():
    net = MemoryGenerator(ngf=NGF, levels=8)
    # AdaIN on encoder levels 2..7 (6) and all 8 decoder levels; dropout on the first 3 decoders
    assert len(net.style_sizes) == 6 + 8
    assert [type(block.dropout).__name__ for block in net.decoder][:4] == ["Dropout"] * 3 + ["Identity"]
    assert sum(net.style_sizes) == 2 * 78 * NGF  # 78 ngf AdaIN channels -> 9984 at ngf 64
    assert isinstance(MemoryGenerator(ngf=NGF, levels=8, use_dropout=False).decoder[0].dropout, nn.Identity)


def test_generator_any_size_divisible_by_two_to_the_levels():
    net = MemoryGenerator(ngf=4, levels=3)
    assert net(torch.zeros(1, 9, 24, 40), unit(1, 512)).image.shape == (1, 3, 24, 40)
    with pytest.raises(ValueError, match="multiples of 2\\*\\*levels = 8"):
        net(torch.zeros(1, 9, 24, 20), unit(1, 512))
    with pytest.raises(ConfigError, match="light, original"):
        MemoryGenerator(mapping="huge")


@pytest.mark.parametrize("mapping", ["light", "original"])
def test_generator_gradients_reach_mapping_and_both_heads(window, mapping):
    torch.manual_seed(2)
    net = MemoryGenerator(ngf=NGF, levels=LEVELS, mapping=mapping)
    out = net(window, unit(2, 512))
    (out.image.square().mean() + out.mask.mean()).backward()
    for name in ["mapping.0.weight", f"mapping.{len(net.mapping) - 1}.weight", "color_head.weight",
                 "mask_head.weight", "encoder.0.conv.weight", "final.conv.weight"]:
        grad = net.get_parameter(name).grad
        assert grad is not None and grad.abs().sum() > 0, name


def test_generator_identity_changes_the_output(window):
    torch.manual_seed(3)
    net = MemoryGenerator(ngf=NGF, levels=LEVELS).eval()
    with torch.no_grad():
        identity = unit(1, 512)
        a = net(window[:1], identity).image
        b = net(window[:1], unit(1, 512)).image
        assert torch.equal(net(window[:1], identity).image, a)  # eval: no dropout, deterministic
    assert (a - b).abs().max() > 1e-3


def test_generator_parameter_counts_at_the_papers_sizes():
    with torch.device("meta"):  # counts the real modules without allocating ~1 GB
        original = MemoryGenerator(mapping="original")
        light = MemoryGenerator(mapping="light")
    n = 9984  # AdaIN parameters at ngf 64, levels 8
    expected_mlp = (512 * n + n) + 2 * (n * n + n)  # the original's MLP 512 -> 9984 -> 9984 -> 9984
    assert sum(p.numel() for p in original.mapping.parameters()) == expected_mlp
    assert 204e6 < expected_mlp < 205e6  # docs/method.md: ~204M
    assert 259e6 < sum(p.numel() for p in original.parameters()) < 260e6  # docs/method.md: ~259M
    light_mapping = sum(p.numel() for p in light.mapping.parameters())
    assert light_mapping == (512 * 512 + 512) + (512 * n + n)
    unet = sum(p.numel() for p in original.parameters()) - expected_mlp
    assert sum(p.numel() for p in light.parameters()) == unet + light_mapping


def test_gan_range_helpers():
    images = torch.rand(2, 3, 4, 4)
    assert to_gan(images).min() >= -1 and to_gan(images).max() <= 1
    assert torch.allclose(from_gan(to_gan(images)), images, atol=1e-6)
    assert from_gan(torch.tensor([-3.0, 3.0])).tolist() == [0.0, 1.0]


# ------------------------------------------------------------ discriminator


def test_patch_discriminator_sees_70_pixels():
    torch.manual_seed(4)
    net = PatchDiscriminator(ndf=8).eval()  # eval: BatchNorm must not mix pixels through batch stats
    condition = torch.randn(1, 9, 128, 128, requires_grad=True)
    image = torch.randn(1, 3, 128, 128, requires_grad=True)
    logits = net(condition, image)
    assert logits.shape == (1, 1, 14, 14)
    logits[0, 0, 7, 7].backward()
    seen = (condition.grad.abs().sum(dim=(0, 1)) + image.grad.abs().sum(dim=(0, 1))) > 0  # [H, W]
    rows, cols = seen.any(dim=1).nonzero()[:, 0], seen.any(dim=0).nonzero()[:, 0]
    assert rows.max() - rows.min() + 1 == 70 and cols.max() - cols.min() + 1 == 70
    assert rows.min() == 7 * 8 - 23  # stride 8, total padding 1 + 2 + 4 + 8 + 8


def test_patch_discriminator_at_256_and_bad_input():
    net = PatchDiscriminator(ndf=4, norm="instance")
    assert net(torch.zeros(1, 9, 256, 256), torch.zeros(1, 3, 256, 256)).shape == (1, 1, 30, 30)
    with pytest.raises(ValueError, match="12 channels"):
        net(torch.zeros(1, 6, 64, 64), torch.zeros(1, 3, 64, 64))
    with pytest.raises(ConfigError, match="batch, instance"):
        PatchDiscriminator(norm="spectral")


# ------------------------------------------------------------------ memory


def small_memory(**kwargs) -> Memory:
    torch.manual_seed(5)
    memory = Memory(size=16, key_dim=8, value_dim=6, top_k=4, **kwargs)
    memory.values.copy_(unit(16, 6))
    return memory


def test_memory_read_returns_the_value_of_the_matching_key():
    memory = small_memory()
    assert torch.equal(memory.read(memory.keys[[5, 11]]), memory.values[[5, 11]])


def test_memory_update_refreshes_a_matching_slot():
    memory = small_memory()
    keys, ages = memory.keys.clone(), memory.ages.clone() + 3
    memory.ages.copy_(ages)
    query = F.normalize(keys[3] + 0.05 * unit(8), dim=0)[None]
    replaced = memory.update(query, memory.values[3][None])
    assert replaced == 0
    assert torch.allclose(memory.keys[3], F.normalize(keys[3] + query[0], dim=0))
    assert memory.ages[3] == 0
    others = torch.arange(16) != 3
    assert torch.equal(memory.keys[others], keys[others])
    assert torch.equal(memory.ages[others], ages[others] + 1)


def test_memory_update_replaces_the_oldest_slot_and_ages_grow():
    memory = small_memory()
    memory.ages.copy_(torch.arange(16.0))
    memory.ages[7] = 100.0  # older than any other by more than 2 x age_noise
    query, target = unit(1, 8), F.normalize(-memory.values[0][None], dim=1)  # matches no value
    values = memory.values.clone()
    assert memory.update(query, target) == 1
    assert torch.allclose(memory.keys[7], query[0]) and torch.equal(memory.values[7], target[0])
    assert memory.ages[7] == 0
    others = torch.arange(16) != 7
    assert torch.equal(memory.ages[others], torch.arange(16.0)[others] + 1)
    assert torch.equal(memory.values[others], values[others])
    memory.update(memory.keys[7][None], target)  # now matches slot 7: refresh, no replacement
    assert memory.ages[7] == 0 and torch.equal(memory.ages[others], torch.arange(16.0)[others] + 2)


def test_memory_triplet_loss():
    memory = small_memory(margin=0.3, threshold=0.98)
    target = memory.values[2][None]
    query = memory.keys[2][None].clone().requires_grad_(True)  # score 1 with its own positive slot
    scores = (query @ memory.keys.T)[0].detach()
    top4 = torch.topk(scores, 4).indices
    best_negative = scores[top4[top4 != 2]].max()
    loss = memory.triplet_loss(query, target)
    assert torch.isclose(loss, F.relu(best_negative - 1 + 0.3))
    # push every other key far away: the positive wins by more than the margin -> zero
    far = memory.keys.clone()
    far[torch.arange(16) != 2] = F.normalize(-memory.keys[2] + 0.1 * unit(15, 8), dim=1)
    memory.keys.copy_(far)
    assert memory.triplet_loss(query, target) == 0
    # the positive slot loses: a negative key equals the query, the positive key is orthogonal
    memory.keys[2] = F.normalize(torch.linalg.svd(query.detach()).Vh[-1], dim=0)
    memory.keys[9] = query[0].detach()
    loss = memory.triplet_loss(query, target)
    expected = 1 - memory.keys[2] @ query[0].detach() + 0.3
    assert torch.isclose(loss, expected, atol=1e-6) and loss > 0.3
    loss.backward()
    assert query.grad.abs().sum() > 0  # trains the key encoder through the query
    # no positive among the top-k (the target matches no value): zero by definition
    assert memory.triplet_loss(query, -target) == 0


def test_memory_state_dict_round_trip():
    memory = small_memory()
    memory.update(unit(3, 8), unit(3, 6))
    memory.update(unit(2, 8).bfloat16(), unit(2, 6).bfloat16())  # as autocast may hand them in
    state = memory.state_dict()
    assert set(state) == {"keys", "values", "ages"}
    restored = Memory(size=16, key_dim=8, value_dim=6, top_k=4)
    restored.load_state_dict(state)
    for name in state:
        assert torch.equal(getattr(restored, name), getattr(memory, name))


def test_memory_read_sequence_interpolates_between_25_frame_anchors():
    memory = small_memory()
    slot_of_anchor = {0: 1, 25: 4, 50: 9, 59: 12}  # frames 0, 25, 50 and the last frame are read
    queries = unit(60, 8)
    for frame, slot in slot_of_anchor.items():
        queries[frame] = memory.keys[slot]
    values = memory.read_sequence(queries)
    assert values.shape == (60, 6)
    for frame, slot in slot_of_anchor.items():
        assert torch.allclose(values[frame], memory.values[slot], atol=1e-6)
    v = memory.values
    assert torch.allclose(values[10], F.normalize(0.6 * v[1] + 0.4 * v[4], dim=0), atol=1e-6)
    assert torch.allclose(values[55], F.normalize((4 * v[9] + 5 * v[12]) / 9, dim=0), atol=1e-6)
    assert torch.allclose(values.norm(dim=1), torch.ones(60))


# ------------------------------------------------------- identity encoders


def test_learned_identity_encoder_gives_unit_features():
    encoder = make_identity_encoder("learned")
    frames = torch.rand(3, 3, 64, 64)
    features = encoder(frames)
    assert torch.equal(encoder(frames, torch.rand(3, 5, 2) * 64), features)  # ArcFace's interface
    assert features.shape == (3, 512)
    assert torch.allclose(features.norm(dim=1), torch.ones(3))
    features.sum().backward()
    assert all(p.grad is not None for p in encoder.parameters())


def test_identity_encoder_names_and_missing_weights(tmp_path):
    with pytest.raises(ConfigError, match="valid: learned, arcface"):
        make_identity_encoder("vggface")
    with pytest.raises(ConfigError, match="no weights file"):
        make_identity_encoder("learned", tmp_path / "learned.pth")
    missing = tmp_path / "arcface" / "backbone.pth"
    with pytest.raises(MissingWeightsError, match="backbone.pth") as error:
        make_identity_encoder("arcface", missing)
    assert str(missing) in str(error.value) and "arcface_torch" in str(error.value)
    with pytest.raises(MissingWeightsError, match="checkpoints/arcface/backbone.pth"):
        make_identity_encoder("arcface")  # the default path (none in the test's working directory)


def insightface_iresnet_state(blocks: tuple[int, ...]) -> dict[str, torch.Tensor]:
    """An IResNet state dict with the key names and shapes of insightface's arcface_torch."""
    state: dict[str, torch.Tensor] = {}

    def bn(prefix: str, channels: int) -> None:
        state.update({f"{prefix}.weight": torch.rand(channels) + 0.5, f"{prefix}.bias": torch.randn(channels) * 0.1,
                      f"{prefix}.running_mean": torch.randn(channels) * 0.1,
                      f"{prefix}.running_var": torch.rand(channels) + 0.5,
                      f"{prefix}.num_batches_tracked": torch.tensor(7)})

    def conv(name: str, out_c: int, in_c: int, k: int) -> None:
        state[name] = torch.randn(out_c, in_c, k, k) / math.sqrt(in_c * k * k)

    conv("conv1.weight", 64, 3, 3)
    bn("bn1", 64)
    state["prelu.weight"] = torch.full((64,), 0.25)
    in_c = 64
    for stage, (planes, count) in enumerate(zip((64, 128, 256, 512), blocks), start=1):
        for i in range(count):
            p = f"layer{stage}.{i}"
            bn(f"{p}.bn1", in_c)
            conv(f"{p}.conv1.weight", planes, in_c, 3)
            bn(f"{p}.bn2", planes)
            state[f"{p}.prelu.weight"] = torch.full((planes,), 0.25)
            conv(f"{p}.conv2.weight", planes, planes, 3)
            bn(f"{p}.bn3", planes)
            if i == 0:
                conv(f"{p}.downsample.0.weight", planes, in_c, 1)
                bn(f"{p}.downsample.1", planes)
            in_c = planes
    bn("bn2", 512)
    state["fc.weight"] = torch.randn(512, 512 * 7 * 7) * 0.002
    state["fc.bias"] = torch.zeros(512)
    bn("features", 512)
    return state


def test_arcface_loads_an_insightface_state_dict_strictly(tmp_path):
    torch.manual_seed(6)
    state = insightface_iresnet_state((2, 2, 2, 2))  # iresnet18's layout; r50/r100 differ in counts only
    path = tmp_path / "backbone.pth"
    torch.save(state, path)
    encoder = make_identity_encoder("arcface", path)
    assert isinstance(encoder, ArcFaceEncoder)
    loaded = encoder.backbone.state_dict()
    assert loaded.keys() == state.keys()
    assert all(torch.equal(loaded[k].to(state[k].dtype), state[k]) for k in state)
    assert not any(p.requires_grad for p in encoder.parameters())
    assert not encoder.train().training  # frozen: BatchNorm stays in eval mode
    features = encoder(torch.rand(1, 3, 112, 112))
    assert features.shape == (1, 512) and torch.allclose(features.norm(dim=1), torch.ones(1))
    state["head.weight"] = torch.zeros(1)
    torch.save(state, path)
    with pytest.raises(TalkfaceError, match="unexpected: head.weight"):
        make_identity_encoder("arcface", path)


@pytest.mark.parametrize("scale", [1.2, 3.0])  # 3.0: the image is first downscaled (antialiased)
def test_arcface_alignment_maps_the_5_points_onto_the_template(scale):
    # an image whose channels hold each pixel centre's own coordinates: bilinear sampling is exact
    height, width = int(130 * scale), int(150 * scale)
    ys, xs = torch.meshgrid(torch.arange(height) + 0.5, torch.arange(width) + 0.5, indexing="ij")
    image = torch.stack([xs / width, ys / height, torch.zeros_like(xs)])[None]  # [1, 3, H, W]
    angle, shift = 0.3, torch.tensor([50.0, 0.0])
    rotation = torch.tensor([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    points = (scale * ARCFACE_TEMPLATE @ rotation.T + shift)[None]  # [1, 5, 2]
    crop = align_arcface(image, points)
    assert crop.shape == (1, 3, 112, 112)
    for (u, v), (x, y) in zip(ARCFACE_TEMPLATE.tolist(), points[0].tolist()):
        column, row = int(u), int(v)  # the crop pixel whose centre lies nearest the template point
        sampled = crop[0, :2, row, column] * torch.tensor([width, height])
        centre = torch.tensor([column + 0.5, row + 0.5])
        expected = scale * rotation @ centre + shift
        assert torch.allclose(sampled, expected, atol=0.01 * scale), (sampled, expected)
        assert (expected - torch.tensor([x, y])).norm() < scale  # and that is the point itself
    centre_crop = align_arcface(torch.rand(2, 3, 120, 160))
    assert centre_crop.shape == (2, 3, 112, 112)


# -------------------------------------------------------------- key encoder


def test_key_encoder_from_scratch_and_from_imagenet_file(tmp_path):
    from talkface import tvcompat  # noqa: F401, I001
    import torchvision  # isort: skip

    torch.manual_seed(7)
    scratch = KeyEncoder()
    keys = scratch(torch.rand(2, 3, 64, 64))
    assert keys.shape == (2, 512) and torch.allclose(keys.norm(dim=1), torch.ones(2))
    assert all(p.requires_grad for p in scratch.parameters())
    missing = tmp_path / "resnet18-f37072fd.pth"
    with pytest.raises(MissingWeightsError, match="resnet18-f37072fd.pth"):
        KeyEncoder(missing)
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), missing)  # stands in for ImageNet's
    frozen = KeyEncoder(missing).train()
    assert not frozen.backbone.training and frozen.project.training
    assert not any(p.requires_grad for p in frozen.backbone.parameters())
    memory = Memory(size=32, key_dim=512, value_dim=512, top_k=8)
    memory.values.copy_(unit(32, 512))
    target = memory.values[0][None]
    query = frozen(torch.rand(1, 3, 64, 64))
    memory.keys[0] = F.normalize(query[0].detach() + 0.1 * unit(512), dim=0)  # the positive slot
    memory.keys[1] = query[0].detach()  # a negative that beats it
    memory.triplet_loss(query, target).backward()
    assert frozen.project.weight.grad.abs().sum() > 0


# ------------------------------------------------------------------- losses


def test_losses_equal_hand_computation():
    fake_logits = torch.tensor([[[[0.5, -1.0]]]])
    real_logits = torch.tensor([[[[2.0, 0.0]]]])
    fake = torch.tensor([[[[0.5, -0.5]]], [[[0.0, 1.0]]], [[[1.0, 1.0]]]]).reshape(1, 3, 1, 2)
    real = torch.zeros(1, 3, 1, 2)
    mask = torch.tensor([[[[0.0, 0.5, 1.0], [1.0, 1.0, 0.5]]]])  # [1, 1, 2, 3]

    def softplus(x: float) -> float:
        return math.log1p(math.exp(x))

    # BCE-with-logits: -log sigmoid(x) = softplus(-x) for label 1, softplus(x) for label 0
    g = generator_loss(fake_logits, fake, real, mask, lambda_mask=2.0)
    gan = (softplus(-0.5) + softplus(1.0)) / 2
    l1 = (0.5 + 0.5 + 0 + 1 + 1 + 1) / 6
    tv = (0.5 + 0.5 + 0 + 0.5) + (1 + 0.5 + 0.5)  # horizontal + vertical neighbour differences
    assert math.isclose(g["gan"].item(), gan, rel_tol=1e-6)
    assert math.isclose(g["l1"].item(), l1, rel_tol=1e-6)
    assert math.isclose(g["mask"].item(), 4 / 6, rel_tol=1e-6)
    assert math.isclose(g["mask_tv"].item(), tv, rel_tol=1e-6)
    assert math.isclose(g["total"].item(), gan + 100 * l1 + 2.0 * 4 / 6 + 1e-5 * tv, rel_tol=1e-6)
    assert math.isclose(generator_loss(fake_logits, fake, real, mask)["total"].item(),
                        gan + 100 * l1 + 0.1 * 4 / 6 + 1e-5 * tv, rel_tol=1e-6)  # general default 0.1
    d = discriminator_loss(real_logits, fake_logits)
    real_term = (softplus(-2.0) + softplus(0.0)) / 2
    fake_term = (softplus(0.5) + softplus(-1.0)) / 2
    assert math.isclose(d["total"].item(), 0.5 * (real_term + fake_term), rel_tol=1e-6)
