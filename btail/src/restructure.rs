//! Reshaping a stored tree to a given topology with minimal object churn.
