"""eeopt's own exception types (each a subclass of the built-in one a caller would expect)."""

from __future__ import annotations


class BudgetUnreachableError(ValueError):
    """A budget below the cheapest mean cost a method reaches on the fitting data.

    Raised in one place (:func:`eeopt.targets.select_for_budget` and the budget solvers of
    the budget-only methods); comparisons and fronts catch it to report "budget below reach"
    instead of parsing an error message.

    Attributes
    ----------
    budget : float
        The budget asked for.
    cheapest : float
        The lowest mean cost the method reaches on the fitting data.
    """

    def __init__(self, budget: float, cheapest: float) -> None:
        self.budget = float(budget)
        self.cheapest = float(cheapest)
        super().__init__(
            f"budget {budget:g} is below the cheapest mean cost this method can reach on the "
            f"fitting data ({cheapest:g}); raise budget."
        )
