"""Cost of a network: parameters, MACs and peak activation memory, from the spec
(``analytic``) or from a module's trace (``traced``), by the same rules."""
