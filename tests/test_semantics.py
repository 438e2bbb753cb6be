"""The ten semantics of DESIGN.md, each with the inputs that break a naive engine."""

from __future__ import annotations

import random
import threading
from datetime import timedelta, timezone
from decimal import Decimal

import pytest
import yaml
from rulekit import AS_OF, activity, fired, lead, ruleset_text, scores, version_of

from leadgate.errors import LeadInputError, RuleDefectError, RulesetError
from leadgate.loader import load_text
from leadgate.ruleset import Stage
from leadgate.version import Limits, load_version

# 1. Typed facts -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("employees", "fires"),
    [
        (350, True),
        ("350", True),
        ("51-200", False),
        ("1,001-5,000", True),
        ("10000+", True),
        (99, False),
        ("100", True),
    ],
)
def test_typed_count_accepts_numbers_strings_and_range_labels(
    employees: object, fires: bool
) -> None:
    """Counts given as numbers, numeric strings or range labels compare as numbers."""
    with version_of("- {id: big, when: employees >= 100, then: {stage: MQL}}") as v:
        decision = v.decide(lead({"employees": employees}))
    assert (fired(decision) == ["big"]) is fires


def test_typed_numeric_text_never_compares_as_text() -> None:
    """ "10" > 5 holds: the engine's own text-versus-number ordering never applies."""
    with version_of("- {id: rich, when: revenue > 5, then: {stage: MQL}}") as v:
        assert v.decide(lead({"revenue": "10"})).stage is Stage.MQL
        assert v.decide(lead({"revenue": "4.5"})).stage is Stage.LEAD


@pytest.mark.parametrize(
    ("attributes", "field"),
    [
        ({"employees": "lots"}, "attributes.employees"),
        ({"employees": -3}, "attributes.employees"),
        ({"employees": "200-50"}, "attributes.employees"),
        ({"revenue": "1e5"}, "attributes.revenue"),
        ({"revenue": float("nan")}, "attributes.revenue"),
        ({"revenue": True}, "attributes.revenue"),
        ({"email": "not-an-address"}, "attributes.email"),
        ({"email": 5}, "attributes.email"),
        ({"country": "Atlantis"}, "attributes.country"),
        ({"student": "maybe"}, "attributes.student"),
        ({"title": {"nested": "object"}}, "attributes.title"),
        ({"title": "x" * 5000}, "attributes.title"),
        ({"employees": "①"}, "attributes.employees"),
        ({"employees": "³+"}, "attributes.employees"),
        ({"employees": "9" * 5000}, "attributes.employees"),
        ({"revenue": "٣"}, "attributes.revenue"),
        ({"email": "ana@gmail.com\u200b"}, "attributes.email"),
        ({"email": "ana@gmail.com\x00"}, "attributes.email"),
    ],
)
def test_typed_bad_values_are_refused_naming_the_field(
    attributes: dict[str, object], field: str
) -> None:
    """A value the schema cannot clean is refused with its field path, not its value."""
    rule = "- {id: any-rule, when: exists(title), then: {stage: MQL}}"
    with version_of(rule) as v, pytest.raises(LeadInputError) as caught:
        v.decide(lead(attributes))
    assert caught.value.field == field
    assert "not-an-address" not in str(caught.value)


@pytest.mark.parametrize(
    "condition",
    ['employees > "big"', "industry == 5", "student == 1", 'title < "m"', "revenue"],
)
def test_typed_mismatched_constants_fail_at_load(condition: str) -> None:
    """Comparing a fact with a constant of another type is a load-time error."""
    text = ruleset_text(f"- id: wrong\n  when: '{condition}'\n  then: {{stage: MQL}}")
    with pytest.raises(RulesetError) as caught:
        load_version(load_text(text, "kit.yaml"), isolated=False)
    assert caught.value.rule_id == "wrong"
    assert caught.value.path == "kit.yaml"


def test_typed_text_compares_after_normalisation() -> None:
    """Keywords fold case and NFC; countries resolve names; emails lower-case."""
    rules = """
    - {id: saas, when: industry == "Café SaaS", then: {score: {fit: 1}}}
    - {id: india, when: country == "IN", then: {score: {fit: 1}}}
    - {id: domain, when: email_domain == "acme.io", then: {score: {fit: 1}}}
    """
    with version_of(rules) as v:
        decision = v.decide(
            lead(
                {
                    "industry": "  CAFE\u0301 saas ",
                    "country": "india",
                    "email": "A@ACME.IO",
                }
            )
        )
    assert fired(decision) == ["saas", "india", "domain"]


@pytest.mark.parametrize(
    ("condition", "attributes", "fires"),
    [
        ("revenue > -1", {"revenue": -0.5}, True),
        ("revenue > -1", {"revenue": -5}, False),
        ("revenue < -1", {"revenue": -5}, True),
        ("employees > 1 - 3", {"employees": 0}, True),
        ("employees * -1 < 0", {"employees": 3}, True),
        ("-employees < -2", {"employees": 3}, True),
        ("employees / 2 > 1", {"employees": 3}, True),
        ("employees / 3 > 0.3", {"employees": 1}, True),
        ("employees / 2 >= 2", {"employees": 3}, False),
        ("employees * 100000 > 0", {"employees": 10**14}, True),
        ("employees * employees > 0", {"employees": 10**14}, True),
        ("revenue * 2 == 5", {"revenue": 2.5}, True),
    ],
)
def test_typed_arithmetic_is_exact_decimal_maths(
    condition: str, attributes: dict[str, object], fires: bool
) -> None:
    """Negative constants, real division and big products behave as on paper.

    The engine on its own divides whole numbers as integers, overflows at 64 bits
    and gets arithmetic on constants alone wrong.
    """
    with version_of(f"- id: maths\n  when: '{condition}'\n  then: {{stage: MQL}}") as v:
        assert (v.decide(lead(attributes)).stage is Stage.MQL) is fires


@pytest.mark.parametrize(
    "email",
    ["ana@gmail.com.", "ana@ＧＭＡＩＬ.com", "ANA@Gmail.Com", " ana@gmail.com "],
)
def test_typed_email_domain_has_one_form_for_lists(email: str) -> None:
    """Trailing dots, full-width letters and case cannot slip past a domain list."""
    rule = "- {id: free, when: email_domain in free_mail, then: {disqualify: Free}}"
    with version_of(rule) as v:
        assert v.decide(lead({"email": email})).stage is Stage.DISQUALIFIED


# 2. Missing means missing -------------------------------------------------------


MISSING_RULES = """
- {id: not-us, when: country != "US", then: {score: {fit: 1}}}
- {id: negated-us, when: not country == "US", then: {score: {fit: 2}}}
- {id: no-country, when: missing(country), then: {score: {fit: 4}}}
- {id: has-country, when: exists(country), then: {score: {fit: 8}}}
- {id: ratio, when: revenue / 1000 > employees * 2, then: {score: {fit: 16}}}
- {id: not-free, when: email_domain not in free_mail, then: {score: {fit: 32}}}
"""


@pytest.mark.parametrize("country", [None, "", "   "])
def test_missing_comparisons_are_false_and_negations_true(country: object) -> None:
    """Absent, null and blank all mean missing: != is false, not ==, missing() true."""
    attributes = {} if country == "" else {"country": country}
    with version_of(MISSING_RULES) as v:
        decision = v.decide(lead(attributes))
    assert fired(decision) == ["negated-us", "no-country"]
    assert decision.stage is Stage.LEAD
    # exists() and missing() ask about absence on purpose, so they raise no warning
    wanted = "missing attribute 'country' read by rules: not-us, negated-us"
    assert wanted in decision.warnings
    assert "missing attribute 'email' read by rules: not-free" in decision.warnings


def test_missing_operand_makes_arithmetic_false() -> None:
    """With employees missing, revenue / 1000 > employees * 2 does not fire.

    The engine on its own treats a missing operand in arithmetic as a match.
    """
    with version_of(MISSING_RULES) as v:
        assert "ratio" not in fired(v.decide(lead({"revenue": 10**9})))
        assert "ratio" in fired(v.decide(lead({"revenue": 10**9, "employees": 5})))


def test_missing_lead_matching_nothing_is_lead() -> None:
    """A lead that matches no rule gets stage LEAD and an empty explanation."""
    with version_of("- {id: x, when: employees > 10, then: {stage: SQL}}") as v:
        decision = v.decide(lead({}))
    assert (decision.stage, decision.fired, decision.owner) == (Stage.LEAD, (), "")


# 3. Regular expressions -----------------------------------------------------------


@pytest.mark.parametrize(
    ("title", "fires"),
    [
        ("Chief Revenue Officer", True),
        ("VP, Sales", True),
        ("abac", False),
        ("Vice-Chiefly", False),
        ("Head of Growth", True),
        ("Headmaster", False),
    ],
)
def test_regex_uses_python_syntax_with_alternation(title: str, fires: bool) -> None:
    """Python re alternation inside word boundaries, where the engine's DFA fails."""
    rule = r"""- id: senior
  when: title matches "\b(vp|chief|head of)\b"
  then: {stage: MQL}"""
    with version_of(rule) as v:
        assert (v.decide(lead({"title": title})).stage is Stage.MQL) is fires


def test_regex_escapes_match_literally() -> None:
    r"""`\.` means a dot, as rule authors know it."""
    rule = r"""- id: dotted
  when: email_domain matches "\.io$"
  then: {stage: MQL}"""
    with version_of(rule) as v:
        assert v.decide(lead({"email": "a@acme.io"})).stage is Stage.MQL
        assert v.decide(lead({"email": "a@acmexio.com"})).stage is Stage.LEAD


@pytest.mark.parametrize("pattern", ["(unclosed", "[z-a]", "a{2,1}"])
def test_regex_invalid_patterns_fail_at_load(pattern: str) -> None:
    """A pattern Python's re would reject is refused when the file loads."""
    text = ruleset_text(
        f'- id: bad\n  when: title matches "{pattern}"\n  then: {{stage: MQL}}'
    )
    with pytest.raises(RulesetError, match="invalid regular expression") as caught:
        load_version(load_text(text), isolated=False)
    assert caught.value.rule_id == "bad"


@pytest.mark.parametrize(
    ("pattern", "title"),
    [("VP|Chief", "vp sales"), ("^[A-Z]+$", "CEO"), ("straße", "STRASSE")],
)
def test_regex_on_folded_text_ignores_case(pattern: str, title: str) -> None:
    """On a case-folded fact, capitals and ß in a pattern still match."""
    rule = f'- id: any-case\n  when: title matches "{pattern}"\n  then: {{stage: MQL}}'
    with version_of(rule) as v:
        assert v.decide(lead({"title": title})).stage is Stage.MQL


def test_regex_runaway_backtracking_is_stopped_naming_the_pattern() -> None:
    """A pattern that would backtrack for ever stops with an error, not a hang."""
    rule = r"""- id: runaway
  when: title matches "^(a|aa)+$"
  then: {stage: MQL}"""
    with version_of(rule) as v:
        with pytest.raises(RuleDefectError, match=r"attributes\.title; simplify it"):
            v.decide(lead({"title": "a" * 40 + "!"}))
        assert v.decide(lead({"title": "aaaa"})).stage is Stage.MQL


# 4. Time ----------------------------------------------------------------------


WINDOW_RULES = """
- {id: week, when: "count(pricing_view, within 7d) >= 2", then: {score: {e: 1}}}
- {id: before, when: 'count(any, within: 8d..35d) >= 1', then: {score: {e: 10}}}
"""


@pytest.mark.parametrize(
    ("ages", "expected"),
    [
        ((1, 6.9), ["week"]),
        ((1, 7), []),
        ((8,), ["before"]),
        ((34.9,), ["before"]),
        ((35,), []),
        ((7.5,), []),
    ],
)
def test_time_windows_count_back_from_as_of(
    ages: tuple[float, ...], expected: list[str]
) -> None:
    """`within 7d` is younger than 7 days; `8d..35d` is at least 8 and under 35."""
    with version_of(WINDOW_RULES) as v:
        decision = v.decide(
            lead({}, [activity("pricing_view", a, str(a)) for a in ages])
        )
    assert fired(decision) == expected


def test_time_future_events_are_ignored_with_a_warning() -> None:
    """Activities after as_of do not count, and the decision says so."""
    with version_of(WINDOW_RULES) as v:
        decision = v.decide(
            lead({}, [activity("pricing_view", 1), activity("pricing_view", -1)])
        )
    assert fired(decision) == []
    assert "1 activities after as_of ignored" in decision.warnings


def test_time_result_does_not_depend_on_offsets() -> None:
    """The same instants written with different UTC offsets decide the same way."""
    tokyo = timezone(timedelta(hours=9))
    with version_of(WINDOW_RULES) as v:
        utc = v.decide(
            lead({}, [activity("pricing_view", 1), activity("pricing_view", 2)])
        )
        shifted = v.decide(
            lead(
                {},
                [activity("pricing_view", 1), activity("pricing_view", 2)],
                as_of=AS_OF.astimezone(tokyo),
            )
        )
    assert fired(utc) == fired(shifted) == ["week"]


# 5. Activities count once -------------------------------------------------------


def test_activities_identical_ones_count_once() -> None:
    """Same type, time and id is one activity; a different id is another."""
    with version_of(WINDOW_RULES) as v:
        same = v.decide(lead({}, [activity("pricing_view", 1, "a")] * 3))
        distinct = v.decide(
            lead(
                {}, [activity("pricing_view", 1, "a"), activity("pricing_view", 1, "b")]
            )
        )
    assert fired(same) == []
    assert fired(distinct) == ["week"]


def test_activities_types_match_whatever_their_case_and_spacing() -> None:
    """ "Pricing View" and "pricing-view" are pricing_view; unknown types are named."""
    acts = [
        activity("Pricing View", 1),
        activity("pricing-view", 2),
        activity("teleport", 1),
    ]
    with version_of(WINDOW_RULES) as v:
        decision = v.decide(lead({}, acts))
    assert fired(decision) == ["week"]
    assert "undeclared activity type 'teleport' ignored" in decision.warnings


def test_activities_and_attributes_unknown_by_the_thousand_stay_short() -> None:
    """Ten unknown names are listed, the rest counted, so a decision stays small."""
    attributes = {f"extra_{i}": 1 for i in range(200)}
    acts = [activity(f"kind_{i}", 1) for i in range(5000)]
    with version_of(WINDOW_RULES) as v:
        warnings = v.decide(lead(attributes, acts)).warnings
    assert len([w for w in warnings if "unknown attribute" in w]) == 11
    assert "190 more unknown attributes ignored" in warnings
    assert "4990 more undeclared activity types ignored" in warnings


def test_activities_retried_request_gives_the_same_decision() -> None:
    """Deciding the same request twice gives the same stage, scores and rules."""
    with version_of(WINDOW_RULES) as v:
        request = lead({}, [activity("pricing_view", 1), activity("pricing_view", 3)])
        first, second = v.decide(request), v.decide(request)
    assert (first.stage, scores(first), fired(first)) == (
        second.stage,
        scores(second),
        fired(second),
    )


# 6. Scores --------------------------------------------------------------------


def test_scores_add_in_decimal_and_cap_per_category() -> None:
    """Nine 0.1 points make exactly 0.9; caps apply per category; negatives count."""
    rules = (
        "\n".join(
            f"- {{id: tenth-{i}, when: employees > {i}, then: {{score: {{e: 0.1}}}}}}"
            for i in range(9)
        )
        + """
- {id: big, when: employees > 0, then: {score: {fit: 70}}}
- {id: penalty, when: employees > 0, then: {score: {fit: -5, risk: -2.5}}}
- {id: exact, when: score.e == 0.9, then: {stage: MQL}}
"""
    )
    with version_of(rules, extra="scores: {caps: {fit: 50}}\n") as v:
        decision = v.decide(lead({"employees": 20}))
    assert scores(decision) == {
        "e": "0.9",
        "fit": "50",
        "risk": "-2.5",
        "total": "48.4",
    }
    assert decision.stage is Stage.MQL
    uncapped = {s.category: s.uncapped for s in decision.scores}
    assert uncapped["fit"] == Decimal(65)


def test_scores_negative_thresholds_see_negative_totals() -> None:
    """A total of -20 is below -10: `score.total < -10` fires, `> -10` does not."""
    rules = """
- {id: bad, when: student, then: {score: {fit: -20}}}
- {id: low, when: score.total < -10, then: {disqualify: Too low}}
- {id: high, when: score.total > -10, then: {stage: MQL}}
"""
    with version_of(rules) as v:
        assert v.decide(lead({"student": True})).stage is Stage.DISQUALIFIED
        assert v.decide(lead({"student": False})).stage is Stage.MQL


# 7. Forward chaining --------------------------------------------------------------


CHAIN_RULES = """
- {id: d4, when: level3, then: {derive: {level4: true}, stage: SQL}}
- {id: d3, when: level2 == "two", then: {derive: {level3: true}}}
- {id: d2, when: level1 > 0.5, then: {derive: {level2: two}}}
- {id: d1, when: employees >= 10, then: {derive: {level1: 1}}}
- {id: either, when: employees >= 10 or revenue >= 10, then: {score: {fit: 5}}}
"""


def test_chaining_derives_to_any_depth_regardless_of_order() -> None:
    """Derived facts chain through four rules written in reverse order."""
    with version_of(CHAIN_RULES) as v:
        decision = v.decide(lead({"employees": 50}))
    assert [rule for rule in fired(decision) if rule != "either"] == [
        "d1",
        "d2",
        "d3",
        "d4",
    ]
    assert decision.stage is Stage.SQL
    assert [(f.name, f.value) for f in decision.derived] == [
        ("level1", 1),
        ("level2", "two"),
        ("level3", True),
        ("level4", True),
    ]


@pytest.mark.parametrize(
    "value", ["back\\slash", "tab\there", "nul\u0000", "\\u0041", "Ünïcødé"]
)
def test_chaining_derived_text_matches_whatever_it_holds(value: str) -> None:
    """Derived text with backslashes, control or non-ASCII characters still matches."""
    rules = [
        {"id": "set", "when": "exists(revenue)", "then": {"derive": {"p": value}}},
        {
            "id": "get",
            "when": f'p == "{value}" and p in ["{value}", other]',
            "then": {"stage": "SQL"},
        },
    ]
    with version_of(yaml.safe_dump(rules)) as v:
        decision = v.decide(lead({"revenue": 1}))
    assert fired(decision) == ["set", "get"]
    assert decision.derived[0].value == value.casefold()


def test_chaining_one_derived_fact_meets_two_tests_of_a_rule() -> None:
    """`band > 1 and band < 5` holds for one derived band of 3."""
    rules = """
- {id: set, when: exists(revenue), then: {derive: {band: 3}}}
- {id: mid, when: band > 1 and band < 5, then: {stage: MQL}}
- {id: high, when: band > 1 and band > 4, then: {stage: SQL}}
"""
    with version_of(rules) as v:
        assert fired(v.decide(lead({"revenue": 1}))) == ["set", "mid"]


def test_chaining_several_values_of_one_fact_are_tested_one_at_a_time() -> None:
    """With lvl derived as 1 and 5, `lvl > 2 and lvl < 3` needs one value in between."""
    rules = """
- {id: one, when: exists(revenue), then: {derive: {lvl: 1, tier: gold}}}
- {id: five, when: exists(revenue), then: {derive: {lvl: 5, tier: silver}}}
- {id: between, when: lvl > 2 and lvl < 3, then: {score: {a: 1}}}
- {id: high, when: lvl > 2 and lvl < 6, then: {score: {b: 1}}}
- {id: any-gold, when: tier == gold, then: {score: {c: 1}}}
- {id: not-only-gold, when: tier != gold, then: {score: {d: 1}}}
- {id: no-gold, when: not tier == gold, then: {score: {e: 1}}}
"""
    with version_of(rules) as v:
        decision = v.decide(lead({"revenue": 1}))
    assert fired(decision) == ["one", "five", "high", "any-gold", "not-only-gold"]


def test_chaining_joins_of_many_values_stay_within_the_firing_limit() -> None:
    """A rule joining three facts of ten values each is activated 1,000 times: fine."""
    rules = "\n".join(
        f"- {{id: d{i}, when: exists(revenue), then: {{derive: {{a: {i}, b: {i}, "
        f"c: {i}}}}}}}"
        for i in range(1, 11)
    )
    rules += "\n- {id: all3, when: a > 0 and b > 0 and c > 0, then: {stage: SQL}}"
    with version_of(rules) as v:
        assert v.decide(lead({"revenue": 1})).stage is Stage.SQL


def test_chaining_rule_fires_once_per_lead_however_it_matches() -> None:
    """A rule whose condition holds two ways fires once and scores once."""
    with version_of(CHAIN_RULES) as v:
        decision = v.decide(lead({"employees": 50, "revenue": 50}))
    assert fired(decision).count("either") == 1
    assert scores(decision)["fit"] == "5"


@pytest.mark.parametrize(
    ("rules", "named"),
    [
        ("- {id: loop, when: not flag, then: {derive: {flag: true}}}", "loop -> loop"),
        (
            "- {id: a, when: not b_done, then: {derive: {a_done: true}}}\n"
            "- {id: b, when: a_done, then: {derive: {b_done: true}}}",
            "a -> b -> a",
        ),
        (
            "- {id: greedy, when: score.total > 5, then: {score: {fit: 1}}}",
            "greedy -> greedy",
        ),
    ],
)
def test_chaining_visible_cycles_are_refused_at_load(rules: str, named: str) -> None:
    """Rules that negate what they lead to, or score on a score, never load."""
    with pytest.raises(RulesetError, match="never settle") as caught:
        load_version(load_text(ruleset_text(rules)), isolated=False)
    assert named in str(caught.value)


def test_chaining_firing_limit_names_the_rules() -> None:
    """Past the firing limit the evaluation stops with an error naming rule ids."""
    limits = Limits(max_firings_per_rule=0, extra_firings=3)
    with version_of(CHAIN_RULES, limits=limits) as v:
        with pytest.raises(RuleDefectError) as caught:
            v.decide(lead({"employees": 50}))
        assert v.decide(lead({})).stage is Stage.LEAD  # the next lead is unharmed
    assert str(caught.value) == (
        "rules fired more than 3 times: d1 (1x), d2 (1x), d3 (1x), d4 (1x)"
    )


# 8. Stage resolution --------------------------------------------------------------


STAGE_RULES = [
    "- {id: free, when: email_domain in free_mail, then: {disqualify: Personal}}",
    "- {id: demo, when: count(demo_request) >= 1, then: {stage: SQL}}",
    "- {id: engaged, when: count(any) >= 2, then: {score: {e: 30}}}",
    "- {id: pricing, when: count(pricing_view) >= 1, then: {score: {e: 30}}}",
    "- {id: threshold, when: score.total >= 60, then: {stage: MQL}}",
    "- {id: student, when: student, then: {stage: LEAD, recycle: true}}",
]


@pytest.mark.parametrize("seed", range(6))
def test_stage_does_not_depend_on_rule_or_fact_order(seed: int) -> None:
    """Shuffled rules and shuffled activities give the same decision."""
    shuffler = random.Random(seed)
    rules = STAGE_RULES[:]
    shuffler.shuffle(rules)
    acts = [activity("pricing_view", 1), activity("chat", 2), activity("webinar", 3)]
    shuffler.shuffle(acts)
    with version_of("\n".join(rules)) as v:
        decision = v.decide(lead({"email": "a@acme.io"}, acts))
    assert decision.stage is Stage.MQL
    assert scores(decision)["total"] == "60"
    assert sorted(fired(decision)) == ["engaged", "pricing", "threshold"]


def test_stage_disqualification_wins_over_promotion() -> None:
    """A disqualified lead stays disqualified whatever else fires."""
    acts = [activity("demo_request", 1), activity("pricing_view", 1)]
    with version_of("\n".join(STAGE_RULES)) as v:
        decision = v.decide(lead({"email": "a@gmail.com"}, acts))
    assert (decision.stage, decision.owner) == (Stage.DISQUALIFIED, "")
    assert {"free", "demo", "threshold"} <= set(fired(decision))


@pytest.mark.parametrize(
    ("prior", "attributes", "stage", "computed"),
    [
        (Stage.SQL, {"email": "a@acme.io"}, Stage.SQL, Stage.LEAD),
        (Stage.MQL, {"email": "a@gmail.com"}, Stage.DISQUALIFIED, Stage.DISQUALIFIED),
        (Stage.SQL, {"email": "a@acme.io", "student": True}, Stage.LEAD, Stage.LEAD),
        (Stage.DISQUALIFIED, {"email": "a@acme.io"}, Stage.LEAD, Stage.LEAD),
    ],
)
def test_stage_prior_stage_never_moves_backwards_unless_told(
    prior: Stage, attributes: dict[str, object], stage: Stage, computed: Stage
) -> None:
    """A prior stage holds unless a rule disqualifies or recycles the lead."""
    with version_of("\n".join(STAGE_RULES)) as v:
        decision = v.decide(lead(attributes, prior=prior))
    assert (decision.stage, decision.computed_stage) == (stage, computed)


def test_stage_reasons_agree_with_the_stage() -> None:
    """A disqualified lead shows only why; a lower stage's reason is left out."""
    rules = """
- {id: free, when: email_domain in free_mail, then: {disqualify: Personal mailbox}}
- {id: demo, when: count(demo_request) >= 1, then: {stage: SQL, reason: Demo}}
- {id: points, when: count(any) >= 1, then: {score: {e: 60}, reason: Active}}
- {id: mql, when: score.total >= 60, then: {stage: MQL, reason: Engaged}}
"""
    acts = [activity("demo_request", 1)]
    with version_of(rules) as v:
        disqualified = v.decide(lead({"email": "a@gmail.com"}, acts))
        sales = v.decide(lead({"email": "a@acme.io"}, acts))
    assert disqualified.reasons == ("Personal mailbox",)
    assert sales.reasons == ("Demo", "Active")
    assert fired(sales) == ["demo", "points", "mql"]


def test_stage_held_by_prior_stage_says_so() -> None:
    """A held stage is named in the warnings, and lower stages' reasons are left out."""
    acts = [activity("pricing_view", 1), activity("chat", 2)]
    mql = "- {id: mql, when: score.total >= 60, then: {stage: MQL, reason: Engaged}}"
    with version_of("\n".join([*STAGE_RULES[:-2], mql])) as v:
        decision = v.decide(lead({"email": "a@acme.io"}, acts, prior=Stage.SQL))
    assert "stage held at SQL by prior_stage; the rules gave MQL" in decision.warnings
    assert decision.reasons == ()
    assert fired(decision) == ["engaged", "pricing", "mql"]


# 9. Isolation -------------------------------------------------------------------


def test_isolation_nothing_of_one_lead_reaches_the_next() -> None:
    """Derived facts and scores of one lead are gone for the next, over 3,000 leads."""
    with version_of(CHAIN_RULES) as v:
        for index in range(3000):
            employees = 50 if index % 2 else 1
            decision = v.decide(lead({"employees": employees}))
            assert (decision.stage is Stage.SQL) is bool(index % 2)
            assert len(decision.derived) == (4 if index % 2 else 0)


def test_isolation_holds_across_threads() -> None:
    """Eight threads deciding different leads get what one thread gets."""
    leads = [lead({"employees": n % 3 * 10, "revenue": n % 5}) for n in range(60)]
    with version_of(CHAIN_RULES) as v:
        expected = [(v.decide(item).stage, scores(v.decide(item))) for item in leads]
        results: dict[int, list[object]] = {}

        def work(worker: int) -> None:
            results[worker] = [
                (v.decide(item).stage, scores(v.decide(item))) for item in leads
            ]

        threads = [threading.Thread(target=work, args=(w,)) for w in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert all(result == expected for result in results.values())


# 10. Explanation ------------------------------------------------------------------


def test_explanation_names_rules_points_facts_and_reasons() -> None:
    """Each fired rule comes with its points, the facts it read and its reason."""
    rules = """
- id: pricing
  when: count(pricing_view, within 7d) >= 1 and employees > 10
  then: {score: {intent: 12.5}, reason: "Looked at pricing this week"}
"""
    with version_of(rules) as v:
        decision = v.decide(lead({"employees": 40}, [activity("pricing_view", 2)]))
    (firing,) = decision.fired
    assert firing.rule_id == "pricing"
    assert firing.points == {"intent": Decimal("12.5")}
    assert dict(firing.matched) == {
        "count(pricing_view, within: 7d)": 1,
        "employees": 40,
    }
    assert decision.reasons == ("Looked at pricing this week",)
    assert firing.actions == ("score",)
    assert decision.as_of == AS_OF


def test_condition_true_always_applies() -> None:
    """`when: true` fires for every lead; `when: false` is refused as a defect."""
    with version_of("- {id: base, when: true, then: {score: {fit: 1}}}") as v:
        assert fired(v.decide(lead({}))) == ["base"]
    text = ruleset_text("- {id: never, when: not true, then: {score: {fit: 1}}}")
    with pytest.raises(RulesetError, match="can never be true"):
        load_version(load_text(text), isolated=False)
