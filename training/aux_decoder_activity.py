"""Whether the ELN's auxiliary decoders trained (ELN Eq. 3), read back from the history.

Decoder k gets gradient on an image only while its CE exceeds ``alpha_k`` times the main
decoder's; an untrained decoder's CE is about ``log C``, so where ``alpha_k`` times the main
CE is above that, decoder k (almost) never trains and the ELN learns from an untrained
decoder's predictions instead of simulated errors. Each step logs the batch's mean main CE
(``eln_main_ce``) and the fraction of its images each decoder trained on
(``eln_aux_active_<k>``); the history holds per-interval means of both.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from training.history import training_intervals

ELN_MAIN_CE = "eln_main_ce"
ELN_AUX_ACTIVE = "eln_aux_active"


def activity_over_history(path: Path) -> dict[str, Any] | None:
    """Step-weighted means over the logged intervals that carry the ELN's Eq. 3 state:
    ``{"main_ce", "aux_active": [fraction per decoder], "steps"}``, or None without any."""
    main_ce, measured = 0.0, 0
    active: list[float] = []
    for steps, record in training_intervals(path):
        if ELN_MAIN_CE not in record:
            continue
        keys = [key for key in record if key.startswith(f"{ELN_AUX_ACTIVE}_")]
        fractions = [record[key] for key in sorted(keys, key=lambda key: int(key.rsplit("_")[-1]))]
        active = active or [0.0] * len(fractions)
        measured += steps
        main_ce += steps * record[ELN_MAIN_CE]
        active = [a + steps * f for a, f in zip(active, fractions, strict=True)]
    if not measured:
        return None
    return {
        "main_ce": main_ce / measured,
        "aux_active": [a / measured for a in active],
        "steps": measured,
    }


def idle_decoders_warning(
    activity: dict[str, Any], alphas: list[float], num_classes: int
) -> str | None:
    """A warning naming every auxiliary decoder whose bound ``alpha_k x`` the run's mean main
    CE is at or above ``log C``, about an untrained decoder's CE, or None. Such a decoder gets
    gradient only on the odd image whose CE exceeds the bound, so it stays near its random
    start whatever the run's length; a decoder below it trains down to its bound."""
    untrained_ce, main_ce = math.log(num_classes), activity["main_ce"]
    idle = [k for k, alpha in enumerate(alphas) if alpha * main_ce >= untrained_ce]
    if not idle:
        return None
    names = ", ".join(
        f"{k} (alpha {alphas[k]:g}: bound {alphas[k] * main_ce:.2f}, trained on "
        f"{100 * activity['aux_active'][k]:.1f}% of images)"
        for k in idle
    )
    return (
        f"ELN auxiliary decoder(s) {names} cannot train: alpha x the main CE "
        f"({main_ce:.3f}) is above an untrained decoder's CE (about log {num_classes} = "
        f"{untrained_ce:.2f}), so the ELN learns from an untrained decoder's predictions "
        f"instead of simulated errors. Use methods.eln.aux_alphas below "
        f"{untrained_ce / main_ce:.1f}."
    )
