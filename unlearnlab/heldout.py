"""The held-out scenario suite: forget sets that no method default, tuned preset or search of
the lab was made on, to measure whether the defaults travel (docs/heldout.md), and the
refusal to search them (``check_not_held_out``), so that they stay held out.

A scenario is (dataset, forget spec, architecture; None: the dataset's default). Held out
means its (dataset, forget set) pair: the architecture does not matter, since a search with
another architecture would still have seen the forget set. The suite, one line of why each:

- MNIST class 2 and Fashion-MNIST class 8 ("bag"): whole classes other than the tuned six;
- MNIST sevens *with* a crossbar on grayscale MNIST: the thesis list, only ever tuned on as
  its complement (MNIST) or on colorized MNIST;
- Fashion-MNIST sandals without a heel (``rest:`` of the heeled-sandals list): the rest of a
  tuned subset's class, four times as large;
- colorized MNIST fours on a green background: a colour spec, where retraining keeps most of
  the forget set recognised (the other colours' fours teach the digit);
- random 1 % of MNIST and 30 % of Fashion-MNIST: random samples ten times smaller and three
  times larger than the tuned 10 %.

Class and random forgetting run on the MLP (as the leaderboard's do, for CPU cost), the
feature subsets on their dataset's default architecture.
"""

from __future__ import annotations

from .errors import ConfigError
from .forget import parse_forget

HELDOUT_SCENARIOS = (("mnist", "class:2", "mlp"),
                     ("fashion_mnist", "class:8", "mlp"),
                     ("mnist", "subset:mnist_sevens_with_crossbar", None),
                     ("fashion_mnist", "rest:fashion_mnist_heeled_sandals", None),
                     ("cmnist", "color:green:4", None),
                     ("mnist", "random:0.01", "mlp"),
                     ("fashion_mnist", "random:0.3", "mlp"))
HELDOUT_NAMES = {("mnist", "class:2"): "mnist-two",
                 ("fashion_mnist", "class:8"): "fashion-bag",
                 ("mnist", "subset:mnist_sevens_with_crossbar"): "mnist-crossed-sevens",
                 ("fashion_mnist", "rest:fashion_mnist_heeled_sandals"): "fashion-flat-sandals",
                 ("cmnist", "color:green:4"): "cmnist-green-fours",
                 ("mnist", "random:0.01"): "mnist-random-1",
                 ("fashion_mnist", "random:0.3"): "fashion-random-30"}


def is_held_out(dataset: str, forget: str) -> bool:
    """Whether (``dataset``, ``forget``) is a scenario of ``HELDOUT_SCENARIOS``, comparing
    canonical forget specs (``random:0.010`` is ``random:0.01``)."""
    canonical = str(parse_forget(forget))
    return any(dataset == d and canonical == str(parse_forget(f))
               for d, f, _ in HELDOUT_SCENARIOS)


def check_not_held_out(dataset: str, forget: str, search: str) -> None:
    """Raise ``ConfigError`` when ``search`` (e.g. "tune", "--preset auto") would search a
    held-out scenario: a default or preset found there would no longer be measured on data
    it was not chosen on."""
    if is_held_out(dataset, forget):
        raise ConfigError(f"{search} refuses {dataset} forget {forget}: it is a held-out "
                          "scenario (unlearnlab.heldout), kept out of every search so that "
                          "it measures the defaults; search another forget set")
