"""Continuous normalizing flows: neural-ODE layers, velocity fields, divergence estimators, RNODE regularizers."""
from ctflows.continuous.cnf import CNF
from ctflows.continuous.divergence import (
    AUTO_EXACT_MAX_FEATURES,
    exact_divergence,
    exact_divergence_forward_mode,
    hutchinson_divergence,
    hutchinson_divergence_forward_mode,
    resolve_divergence,
    sample_noise,
)
from ctflows.continuous.fields import (
    ConcatMLP,
    ConcatSquashMLP,
    FourierMLP,
    FourierTime,
    TimeIdentity,
    TimeMLP,
    VelocityField,
)
from ctflows.continuous.layers import ConcatLinear, ConcatSquashLinear
from ctflows.continuous.matching import FlowMatching, flow_matching_loss, optimal_transport_pairing
from ctflows.continuous.likelihood import LogProbEstimate, estimate_log_prob, log_prob_is_exact
from ctflows.continuous.regularization import REGULARIZERS, jacobian_frobenius_rate, kinetic_energy_rate

__all__ = [
    "CNF",
    "VelocityField",
    "TimeMLP",
    "ConcatMLP",
    "ConcatSquashMLP",
    "FourierMLP",
    "TimeIdentity",
    "FourierTime",
    "ConcatLinear",
    "ConcatSquashLinear",
    "exact_divergence",
    "hutchinson_divergence",
    "exact_divergence_forward_mode",
    "hutchinson_divergence_forward_mode",
    "sample_noise",
    "resolve_divergence",
    "AUTO_EXACT_MAX_FEATURES",
    "REGULARIZERS",
    "kinetic_energy_rate",
    "jacobian_frobenius_rate",
    "FlowMatching",
    "flow_matching_loss",
    "optimal_transport_pairing",
    "estimate_log_prob",
    "LogProbEstimate",
    "log_prob_is_exact",
]
