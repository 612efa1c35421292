"""The optimiser of every cell: Hugging Face ``Trainer``'s defaults, computed without wasted work.

``Trainer`` fine-tunes with AdamW (betas 0.9/0.999, eps 1e-8, weight decay 0 - i.e. Adam), a learning
rate decayed linearly to 0 without warm-up, and the gradient norm clipped at 1.0. ``Optimiser`` is
exactly that, with one saving: the word-embedding table.

MiniLM-L6's table is 30,522 x 384 = 11.7M of its 22.7M parameters, but a batch of 32 short sentences
touches a few hundred of its rows. A dense gradient means allocating, zero-filling, norming and
Adam-updating all 11.7M numbers every step (~40 ms of a ~300 ms step on 2 CPU cores). Instead the
table produces a sparse gradient (``nn.Embedding(sparse=True)``) and ``touched_rows_adam_`` updates
only the rows that some batch has touched so far. That is exact, not an approximation: a row whose
gradient has always been zero has Adam moments m = v = 0, so dense Adam moves it by
lr * 0 / (0 + eps) = 0; a row touched once keeps moving on its momentum, and is updated with g = 0,
exactly as dense Adam does. (``torch.optim.SparseAdam`` is *not* this: it freezes the moments of rows
absent from the current batch, which changes the maths.) The clipping norm includes the sparse
gradient's values, so it is the same norm as the dense one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn

BETAS = (0.9, 0.999)
EPS = 1e-8


def sparse_embedding_tables(model: nn.Module) -> list[nn.Embedding]:
    """The model's trainable word-embedding table, switched to sparse gradients (empty if frozen)."""
    table = model.get_input_embeddings()
    if not isinstance(table, nn.Embedding) or not table.weight.requires_grad or table.max_norm is not None:
        return []
    table.sparse = True  # nn.Embedding's own switch: its backward then returns only the rows it looked up
    return [table]


@torch.no_grad()
def touched_rows_adam_(param: torch.Tensor, grad: torch.Tensor, state: dict, lr: float,
                       betas: tuple[float, float] = BETAS, eps: float = EPS) -> None:
    """One Adam step for a 2-D ``param`` with a coalesced sparse ``grad``, equal to dense Adam's.

    Same formula as ``torch.optim.Adam``: m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2;
    param -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps), applied to every row touched at
    step t or before (with g = 0 for rows not in this batch); all other rows have m = v = 0 and
    would move by exactly 0.
    """
    beta1, beta2 = betas
    if not state:
        state["step"] = 0
        state["touched"] = torch.zeros(param.shape[0], dtype=torch.bool, device=param.device)
        state["exp_avg"] = torch.zeros_like(param)
        state["exp_avg_sq"] = torch.zeros_like(param)
    state["step"] += 1
    step = state["step"]
    rows, values = grad.indices()[0], grad.values()
    state["touched"][rows] = True
    live = state["touched"].nonzero().squeeze(1)  # sorted, and a superset of the (sorted) batch rows
    g = torch.zeros((len(live), param.shape[1]), dtype=param.dtype, device=param.device)
    g[torch.searchsorted(live, rows)] = values.to(param.dtype)
    exp_avg = state["exp_avg"][live].lerp_(g, 1 - beta1)
    exp_avg_sq = state["exp_avg_sq"][live].mul_(beta2).addcmul_(g, g, value=1 - beta2)
    state["exp_avg"][live], state["exp_avg_sq"][live] = exp_avg, exp_avg_sq
    denominator = (exp_avg_sq.sqrt() / math.sqrt(1 - beta2**step)).add_(eps)
    param.index_add_(0, live, exp_avg / denominator, alpha=-lr / (1 - beta1**step))


@dataclass
class Optimiser:
    """Adam over ``dense`` parameters (fused AdamW) and ``sparse`` embedding tables, one lr schedule."""

    dense: list[nn.Parameter]
    sparse: list[nn.Parameter]
    lr: float
    total_steps: int
    max_grad_norm: float = 1.0
    steps_taken: int = 0
    _adamw: torch.optim.AdamW | None = field(default=None, repr=False)
    _sparse_state: dict = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if self.dense:
            # fused AdamW runs one kernel for all parameters on CPU and GPU; weight decay 0 makes it Adam
            self._adamw = torch.optim.AdamW(self.dense, lr=self.lr, betas=BETAS, eps=EPS, weight_decay=0.0, fused=True)

    @classmethod
    def for_model(cls, model: nn.Module, parameters: list[nn.Parameter], lr: float, total_steps: int,
                  max_grad_norm: float = 1.0) -> Optimiser:
        """Adam over ``parameters``, with the model's embedding table (if among them) kept sparse."""
        tables = {id(t.weight) for t in sparse_embedding_tables(model) if any(t.weight is p for p in parameters)}
        for table in model.modules():  # a table we are not training must not be left sparse
            if isinstance(table, nn.Embedding) and table.sparse and id(table.weight) not in tables:
                table.sparse = False
        return cls(dense=[p for p in parameters if id(p) not in tables],
                   sparse=[p for p in parameters if id(p) in tables], lr=lr, total_steps=total_steps,
                   max_grad_norm=max_grad_norm)

    @property
    def current_lr(self) -> float:
        """Linear decay to 0 without warm-up (``get_linear_schedule_with_warmup`` with 0 warm-up steps)."""
        return self.lr * max(0.0, 1.0 - self.steps_taken / max(1, self.total_steps))

    def zero_grad(self) -> None:
        for p in self.dense + self.sparse:
            p.grad = None

    @torch.no_grad()
    def clip_and_step(self) -> None:
        """Clip the global gradient norm (dense and sparse together), then take one Adam step."""
        for p in self.sparse:
            if p.grad is not None:
                p.grad = p.grad.coalesce()  # sums repeated rows, so .values() holds the true gradient rows
        grads = [p.grad for p in self.dense if p.grad is not None]
        grads += [p.grad.values() for p in self.sparse if p.grad is not None]
        total_norm = nn.utils.get_total_norm(grads, foreach=True)
        scale = (self.max_grad_norm / (total_norm + 1e-6)).clamp(max=1.0)  # as nn.utils.clip_grad_norm_
        if grads:
            torch._foreach_mul_(grads, scale)
        lr = self.current_lr
        if self._adamw is not None:
            for group in self._adamw.param_groups:
                group["lr"] = lr
            self._adamw.step()
        for p in self.sparse:
            if p.grad is not None:
                touched_rows_adam_(p, p.grad, self._sparse_state.setdefault(id(p), {}), lr)
        self.steps_taken += 1
