"""Outputs that cannot mislead: figure labels inside the figure, advice that matches what was measured."""


from maskcls import labels


def _text_boxes_inside(fig) -> list[str]:
    """The texts of ``fig``'s axes that stick out of their axes' frame (drawn with Agg, as the PNG is):
    past the frame a label runs into the margin and, at the figure's edge, is cut off."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()
    out = []
    for ax in fig.axes:
        box = ax.bbox
        for text in ax.texts:
            b = text.get_window_extent(renderer)
            if b.x0 < box.x0 - 0.5 or b.x1 > box.x1 + 0.5 or b.y0 < box.y0 - 0.5 or b.y1 > box.y1 + 0.5:
                out.append(text.get_text())
    return out


def test_no_label_of_the_age_histogram_is_clipped():
    from maskcls.reports.eda_page import _age_figure

    ages = {"histogram": {str(a): 10 + a % 7 for a in range(18, 61)},
            "near_cutoffs": [{"age": 30, "ages": [28, 31], "cutoff": "young"},
                             {"age": 60, "ages": [58, 61], "cutoff": "old"}],
            "move_old_cutoff": {"to": 58}}
    fig = _age_figure(ages, labels.AgeCutoffs())
    assert len(fig.axes[0].texts) == 3 and _text_boxes_inside(fig) == []


def test_eda_advice_matches_the_recipe_study():
    """The README's recipe study: class weights helped, focal loss did not; the report must not advise focal."""
    from maskcls.reports.eda import imbalance

    names = labels.class_names()
    note = imbalance({n: (50 if i % 3 else 2) for i, n in enumerate(names)})["note"]
    assert "class_weights" in note
    assert "focal" not in note.split("did not help")[0].replace("focal loss (train.loss=focal) and", "")
