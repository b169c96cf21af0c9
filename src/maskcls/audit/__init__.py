"""Label audit: rank likely label errors from out-of-fold probabilities, and a page to review them.

``rank`` is the pure core (tables in, issues out); ``review`` writes the static review page.
"""

from .rank import field_quality, find_issues, precision_recall_curve, proposals, score_against_truth, to_corrections

__all__ = ["find_issues", "field_quality", "proposals", "to_corrections", "score_against_truth",
           "precision_recall_curve"]
