"""The guided DDIM loop: gamma = 0 is diffusers' DDIM, gamma > 0 really guides, images ignore their batch."""

import numpy as np
import torch
from diffusers import DDIMPipeline, DDPMScheduler

from side_engine.method.classifier import ResNetClassifier
from side_engine.method.guidance import classifier_cond_fn, image_seed, sample, to_uint8

from helpers import make_tiny_unet


def _ddim(scheduler_config):
    from diffusers import DDIMScheduler

    return DDIMScheduler.from_config(scheduler_config)


def test_gamma_zero_equals_diffusers_ddim_pipeline_with_the_same_noise():
    unet = make_tiny_unet()
    sched = DDPMScheduler(num_train_timesteps=100)
    seeds = [image_seed(0, 0, i) for i in range(3)]
    ours = sample(unet, _ddim(sched.config), seeds, steps=5)
    reference = DDIMPipeline(unet=unet, scheduler=sched)(
        batch_size=3, generator=[torch.Generator().manual_seed(s) for s in seeds], num_inference_steps=5, eta=0.0,
        output_type="np").images
    ours_np = (ours / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 1).numpy()
    np.testing.assert_allclose(ours_np, reference, atol=1e-6)


def test_guidance_changes_the_output_and_more_gamma_moves_it_further():
    unet = make_tiny_unet()
    sched = _ddim(DDPMScheduler(num_train_timesteps=100).config)
    torch.manual_seed(1)
    clf = ResNetClassifier(1, 3, width=8, blocks=[1], time_embed_dim=16).eval()
    seeds = [11, 12]
    plain = sample(unet, sched, seeds, steps=4)
    weak = sample(unet, sched, seeds, steps=4, gamma=2.0, cond_fn=classifier_cond_fn(clf, [0, 1], True))
    strong = sample(unet, sched, seeds, steps=4, gamma=20.0, cond_fn=classifier_cond_fn(clf, [0, 1], True))
    d_weak, d_strong = (weak - plain).abs().mean(), (strong - plain).abs().mean()
    assert d_weak > 1e-4
    assert d_strong > d_weak


def test_guidance_raises_the_probability_of_the_target_label():
    unet = make_tiny_unet()
    sched = _ddim(DDPMScheduler(num_train_timesteps=100).config)
    torch.manual_seed(2)
    clf = ResNetClassifier(1, 3, width=8, blocks=[1]).eval()
    seeds = list(range(8))
    labels = [2] * 8
    with torch.no_grad():
        p_plain = torch.softmax(clf(sample(unet, sched, seeds, steps=4)), 1)[:, 2].mean()
        guided = sample(unet, sched, seeds, steps=4, gamma=10.0, cond_fn=classifier_cond_fn(clf, labels, False))
        p_guided = torch.softmax(clf(guided), 1)[:, 2].mean()
    assert p_guided > p_plain


def test_an_image_made_alone_matches_its_batch_within_one_grey_level_at_moderate_gamma():
    unet = make_tiny_unet()
    sched = _ddim(DDPMScheduler(num_train_timesteps=100).config)
    torch.manual_seed(3)
    clf = ResNetClassifier(1, 3, width=8, blocks=[1], time_embed_dim=16).eval()
    seeds = [image_seed(7, i % 3, i) for i in range(5)]
    labels = [i % 3 for i in range(5)]
    batch = to_uint8(sample(unet, sched, seeds, steps=4, gamma=5.0, cond_fn=classifier_cond_fn(clf, labels, True)))
    alone = to_uint8(sample(unet, sched, seeds[3:4], steps=4, gamma=5.0,
                            cond_fn=classifier_cond_fn(clf, labels[3:4], True)))
    assert np.abs(batch[3].astype(int) - alone[0].astype(int)).max() <= 1


def test_the_same_index_starts_from_the_same_noise_at_every_gamma():
    # The seed is a function of (audit seed, label, index) only: a sweep compares like with like.
    assert image_seed(0, 1, 5) == image_seed(0, 1, 5)
    assert len({image_seed(0, 1, i) for i in range(100)}) == 100
    assert image_seed(0, 1, 5) != image_seed(1, 1, 5)


def _clipping_scheduler():
    from diffusers import DDIMScheduler

    sched = DDIMScheduler.from_config(DDPMScheduler(num_train_timesteps=100).config)
    assert sched.config.clip_sample  # as in every DDPMPipeline folder
    return sched


def test_one_guided_step_at_a_high_t_moves_x_along_the_gradient_although_the_scheduler_clips():
    # The bug this guards against: guidance added to eps before a clipping DDIM step was clipped out of x0 and
    # survived reversed in the direction term, so the step moved against the gradient at high t.
    from side_engine.method.guidance import denoise_step, unclipped

    unet = make_tiny_unet()
    sched = _clipping_scheduler()
    stepper = unclipped(sched)
    sched.set_timesteps(10)
    stepper.set_timesteps(10)
    torch.manual_seed(4)
    clf = ResNetClassifier(1, 3, width=8, blocks=[1], time_embed_dim=16).eval()
    x = torch.randn(6, 1, 8, 8, generator=torch.Generator().manual_seed(5))
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    t = sched.timesteps[1]  # t = 80 of 100
    abar = sched.alphas_cumprod[t]
    with torch.no_grad():
        eps = unet(x, t).sample
    assert ((x - (1 - abar).sqrt() * eps) / abar.sqrt()).abs().max() > 1  # the x0 estimate is clipped here
    g = classifier_cond_fn(clf, labels, time_dependent=True)(x, t)
    plain = denoise_step(sched, sched, x, t, eps)
    guided = denoise_step(sched, stepper, x, t, eps, gamma=10.0, g=g)
    cos = torch.nn.functional.cosine_similarity((guided - plain).flatten(1), g.flatten(1), dim=1)
    assert (cos > 0.9).all(), cos


class _LinearProbe(torch.nn.Module):
    """A fixed linear classifier of x_t that ignores t: its gradient points the same way at every step."""

    def __init__(self, classes: int = 3, pixels: int = 64, seed: int = 6):
        super().__init__()
        self.w = torch.randn(classes, pixels, generator=torch.Generator().manual_seed(seed)) / pixels ** 0.5

    def forward(self, x, t=None):
        return x.flatten(1) @ self.w.T


def test_over_a_whole_run_the_guiding_classifier_puts_more_images_in_their_target_label_as_gamma_grows():
    unet = make_tiny_unet()
    sched = _clipping_scheduler()
    clf = _LinearProbe()
    seeds = [image_seed(0, i % 3, i) for i in range(30)]
    labels = torch.tensor([i % 3 for i in range(30)])
    rates = []
    for gamma in (0.0, 1.0, 10.0):
        x = sample(unet, sched, seeds, steps=10, gamma=gamma, cond_fn=classifier_cond_fn(clf, labels, True))
        with torch.no_grad():
            rates.append((clf(x).argmax(1) == labels).float().mean().item())
    assert rates[0] < rates[1] < rates[2], rates
    assert rates[2] > 0.9, rates
