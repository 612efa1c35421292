"""harness.method.optim: the touched-rows Adam is dense Adam (Trainer's optimiser), computed on fewer rows."""

import copy

import pytest
import torch
from torch import nn

from harness.method.models import head_logits, head_parameters, load_classifier, sentence_vector
from harness.method.optim import Optimiser, touched_rows_adam_

STEPS, LR = 12, 1e-2


def _reference_step(model, optimiser, schedule, parameters, loss):
    """What Trainer does per step: AdamW (wd 0), clip_grad_norm_(1.0), linear decay."""
    optimiser.zero_grad(set_to_none=True)
    loss.backward()
    nn.utils.clip_grad_norm_(parameters, 1.0)
    optimiser.step()
    schedule.step()


def _batch(step: int, vocab_rows: int):
    generator = torch.Generator().manual_seed(step)
    ids = torch.randint(1, vocab_rows, (4, 7), generator=generator)
    return ids, torch.ones_like(ids), torch.randint(0, 3, (4,), generator=generator)


@pytest.mark.parametrize("name", ["tiny-bert", "tiny-distilbert"])
def test_touched_rows_adam_equals_dense_adamw_with_clipping_and_decay(name):
    # float64, so that "equal" means equal maths rather than equal rounding
    ours_model = load_classifier(name, 3, seed=0)[0].double().eval()
    reference = copy.deepcopy(ours_model)
    start = copy.deepcopy(ours_model)
    ref_params = [p for p in reference.parameters() if p.requires_grad]
    ref_opt = torch.optim.AdamW(ref_params, lr=LR, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, foreach=False)
    ref_schedule = torch.optim.lr_scheduler.LambdaLR(ref_opt, lambda s: max(0.0, 1 - s / STEPS))
    ours = Optimiser.for_model(ours_model, [p for p in ours_model.parameters() if p.requires_grad], LR, STEPS)
    assert [p.shape for p in ours.sparse] == [ours_model.get_input_embeddings().weight.shape]

    drawn = set()
    for step in range(STEPS):
        # early steps touch rows 1..39, later ones 1..59: rows 40..59 join midway, rows 60.. never
        ids, mask, labels = _batch(step, 40 if step < STEPS // 2 else 60)
        drawn |= set(ids.flatten().tolist())
        losses = [nn.functional.cross_entropy(head_logits(m, sentence_vector(m, ids, mask)), labels) * 50
                  for m in (reference, ours_model)]  # x50: gradients large enough that clipping acts
        _reference_step(reference, ref_opt, ref_schedule, ref_params, losses[0])
        ours.zero_grad()
        losses[1].backward()
        assert ours_model.get_input_embeddings().weight.grad.is_sparse
        ours.clip_and_step()

    for (key, expected), actual in zip(reference.state_dict().items(), ours_model.state_dict().values()):
        torch.testing.assert_close(actual, expected, rtol=0, atol=1e-10, msg=key)
    table, before = ours_model.get_input_embeddings().weight, start.get_input_embeddings().weight
    assert torch.equal(table[60:], before[60:])  # never touched: not moved, not even by rounding
    assert (table[sorted(drawn)] - before[sorted(drawn)]).abs().amax(1).min() > 0  # every touched row moved


def test_rows_touched_earlier_keep_moving_on_their_momentum():
    # the difference from torch.optim.SparseAdam, which would leave row 0 alone at step 2
    param = torch.zeros(3, 2, dtype=torch.float64)
    state: dict = {}
    first = torch.sparse_coo_tensor([[0]], [[1.0, -1.0]], (3, 2), dtype=torch.float64,
                                    check_invariants=True).coalesce()
    second = torch.sparse_coo_tensor([[1]], [[2.0, 2.0]], (3, 2), dtype=torch.float64,
                                    check_invariants=True).coalesce()
    touched_rows_adam_(param, first, state, lr=0.1)
    after_first = param.clone()
    touched_rows_adam_(param, second, state, lr=0.1)
    assert not torch.equal(param[0], after_first[0])  # g = 0 but m != 0: dense Adam moves it
    assert torch.all(param[2] == 0)

    dense = torch.zeros(3, 2, dtype=torch.float64, requires_grad=True)
    adam = torch.optim.Adam([dense], lr=0.1, foreach=False)
    for grad in (first, second):
        dense.grad = grad.to_dense()
        adam.step()
    torch.testing.assert_close(param, dense.detach(), rtol=0, atol=1e-15)


def test_a_probe_keeps_dense_gradients_and_trains_only_the_head():
    model = load_classifier("tiny-bert", 2, seed=0)[0]
    model.get_input_embeddings().sparse = True  # left over from an earlier full fine-tuning
    for p in model.base_model.parameters():
        p.requires_grad_(False)
    ours = Optimiser.for_model(model, head_parameters(model), 1e-2, 10)
    assert ours.sparse == [] and not model.get_input_embeddings().sparse
