from fireact.data.scoring import exact_match, f1_score, letter_match, normalize_answer, yes_no_match


def test_normalize_answer_squad_style():
    assert normalize_answer("The  Eiffel-Tower!") == "eiffeltower"
    assert normalize_answer("An apple, a pear") == "apple pear"


def test_exact_match_and_f1():
    assert exact_match("the Beatles", "Beatles") == 1.0
    assert exact_match(None, "x") == 0.0
    assert f1_score("Seth MacFarlane creator", "Seth MacFarlane") == 0.8
    assert f1_score("yes", "no") == 0.0
    assert f1_score("no way", "no") == 0.0  # yes/no answers must match exactly


def test_yes_no_and_letter():
    assert yes_no_match("Yes, because it is", "yes") == 1.0
    assert yes_no_match("yesterday", "yes") == 0.0
    assert yes_no_match("No.", "no") == 1.0
    assert letter_match("B", "B") == letter_match("(B) text", "B") == letter_match("B. text", "B") == 1.0
    assert letter_match("Blue", "B") == 0.0
    assert letter_match("C", "B") == 0.0
