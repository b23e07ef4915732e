"""The identity rules, pure (funnel.community.names and matching, and the resolver's union-find): normalisation
of e-mails, phones and names, and each trap users of DevRel tools report, in both directions: what must never
merge or be suggested with confidence, and what must link (certain) or be suggested (probable)."""
from __future__ import annotations

import pytest

from funnel.community import identity, matching, names
from funnel.community.matching import best_match, compare, confidence, normalize_email, normalize_phone, profile
from funnel.community.names import NameMatch, compare_names, name_key


def _ids(p: matching.Profile) -> set[tuple[str, str]]:
    return set(p.identifiers)


def _suggestion(a: matching.Profile, b: matching.Profile) -> float:
    match = best_match([a], [b])
    return match[0] if match else 0.0


# ---------------------------------------------------------------- e-mail, phone, domain

@pytest.mark.parametrize("raw", [
    "ymurakami@minato-data.co.jp", "YMURAKAMI@MINATO-DATA.CO.JP", "mailto:ymurakami@minato-data.co.jp",
    "MAILTO: ymurakami@minato-data.co.jp", "  ymurakami@minato-data.co.jp \t", "Yumi <ymurakami@minato-data.co.jp>",
    "ｙｍｕｒａｋａｍｉ＠ｍｉｎａｔｏ－ｄａｔａ．ｃｏ．ｊｐ", "<ymurakami@minato-data.co.jp>",
])
def test_an_address_is_one_mailbox_however_it_is_dressed(raw):
    email = normalize_email(raw)
    assert email and email.value == "ymurakami@minato-data.co.jp" and email.personal and not email.free_mail


@pytest.mark.parametrize("raw", ["sho.takimura87@gmail.com", "shotakimura87@gmail.com", "Sho.Taki.Mura87@GMail.com",
                                 "sho.takimura87+events@googlemail.com", "shotakimura87+github@gmail.com"])
def test_gmail_ignores_dots_and_tags_and_googlemail_is_gmail(raw):
    assert normalize_email(raw).value == "shotakimura87@gmail.com"


def test_dots_count_outside_gmail_and_tags_are_dropped_everywhere():
    dotted, plain = normalize_email("yumi.suzuki@minato-data.co.jp"), normalize_email("yumisuzuki@minato-data.co.jp")
    assert dotted.value != plain.value
    assert normalize_email("yumi+jobs@minato-data.co.jp").value == "yumi@minato-data.co.jp"


def test_github_noreply_is_the_user_id_and_the_old_form_the_login():
    with_id = normalize_email("4878849+Hanako-Hayashi@users.noreply.github.com")
    assert with_id.value == "4878849@users.noreply.github.com" and with_id.github_login == "hanako-hayashi"
    renamed = normalize_email("4878849+hanako-h@users.noreply.github.com")
    assert renamed.value == with_id.value  # the id survives a rename
    assert normalize_email("hanako-hayashi@users.noreply.github.com").value == "hanako-hayashi@users.noreply.github.com"
    assert not normalize_email("49699333+dependabot[bot]@users.noreply.github.com").personal


@pytest.mark.parametrize("raw", ["info@minato-data.co.jp", "support@devworks.io", "devrel@devworks.io",
                                 "ADMIN@minato-data.co.jp", "contact@sakura-soft.jp", "noreply@github.com",
                                 "no-reply@devworks.io", "support-jp@devworks.io", "info.tokyo@devworks.io",
                                 "devrel-team@devworks.io", "events2024@devworks.io", "test@example.com",
                                 "hello@devworks.io"])
def test_role_and_no_reply_addresses_are_no_person(raw):
    assert not normalize_email(raw).personal


@pytest.mark.parametrize("raw", ["dev.tanaka@devworks.io", "hina@fujita.dev", "ken@minato-data.co.jp",
                                 "info.suzuki@devworks.io"])
def test_a_person_whose_address_starts_like_a_role_is_a_person(raw):
    assert normalize_email(raw).personal


def test_not_an_address():
    assert normalize_email("not an address") is None and normalize_email("") is None and normalize_email(None) is None


@pytest.mark.parametrize("raw", ["090-1234-5678", "+81 90 1234 5678", "０９０（１２３４）５６７８",
                                 "0081-90-1234-5678"])
def test_phones_are_international_digits(raw):
    assert normalize_phone(raw) == "+819012345678"


def test_a_short_number_is_no_phone():
    assert normalize_phone("12-34") is None


def test_domains():
    assert matching.normalize_domain("https://www.Minato-Data.co.jp/about") == "minato-data.co.jp"
    assert matching.normalize_domain("not a domain") is None


# ---------------------------------------------------------------- names

@pytest.mark.parametrize("written", [
    "Hina Fujita", "FUJITA Hina", "fujita hina", "ふじた ひな", "ふじたひな", "フジタ ヒナ", "ヒナ・フジタ", "ﾌｼﾞﾀ ﾋﾅ",
    "Ｈｉｎａ　Ｆｕｊｉｔａ", "HinaFujita", "hinafujita", "藤田 陽菜", "藤田陽菜", "藤田　陽菜",
])
def test_one_name_in_every_script_order_and_spacing(written):
    assert compare_names(name_key(written), name_key("Hina Fujita"))[0] in (
        NameMatch.SAME, NameMatch.SAME_READING, NameMatch.SAME_COMPACT)


@pytest.mark.parametrize("a, b", [("Gotō Yūko", "後藤 優子"), ("Gotou Yuuko", "Goto Yuko"),
                                  ("Gotoh Yuko", "ごとう ゆうこ"), ("Shouta Kimura", "木村 翔太"),
                                  ("Syouta Kimura", "Shota Kimura"), ("Ōno Ken", "大野 健"),
                                  ("Ohno Takeshi", "大野 健"), ("Jun'ichi Kudō", "くどうじゅんいち"),
                                  ("Honma Yui", "Homma Yui"), ("Hasimoto Keiko", "橋本 恵子")])
def test_long_vowels_kunrei_and_kanji_readings_are_one_name(a, b):
    assert compare_names(name_key(a), name_key(b))[0] in (NameMatch.SAME, NameMatch.SAME_READING)


def test_a_kanji_given_name_has_several_readings():
    for reading in ("Hina", "Haruna"):
        assert compare_names(name_key(f"{reading} Fujita"), name_key("藤田 陽菜"))[0] is NameMatch.SAME_READING
    for reading in ("Ken", "Takeshi"):
        assert compare_names(name_key(f"{reading} Yamada"), name_key("山田健"))[0] is NameMatch.SAME_READING


@pytest.mark.parametrize("a, b", [("長谷川 由美", "鈴木 由美"), ("Yumi Suzuki", "Yumi Hasegawa"),
                                  ("山田 健", "Kenta Yamada"),
                                  ("井上健", "John Smith"), ("清水 翔太", "山田 健")])
def test_different_people_with_a_name_in_common_conflict(a, b):
    assert compare_names(name_key(a), name_key(b))[0] is NameMatch.CONFLICT


def test_accents_and_letters_without_a_base_letter_fold():
    assert compare_names(name_key("Søren Nørgaard"), name_key("Soren Norgaard"))[0] is NameMatch.SAME
    assert compare_names(name_key("José García"), name_key("GARCIA Jose"))[0] is NameMatch.SAME
    assert compare_names(name_key("Liam O'Brien"), name_key("Liam OBrien"))[0] is NameMatch.SAME


@pytest.mark.parametrize("written", ["Deleted User", "ghost", "Anonymous", "unknown", "名無し", "renovate[bot]",
                                     "dependabot", "github-actions[bot]", "snyk-bot", ""])
def test_placeholders_and_bots_have_no_name(written):
    assert name_key(written) is None


def test_one_word_is_not_a_full_name():
    assert not name_key("Ryo").full and not name_key("健").full and not name_key("Alex").full
    assert compare_names(name_key("Ryo"), name_key("Ryo"))[0] is NameMatch.UNKNOWN


def test_shared_mailbox_holders_are_told_apart_by_unrelated_names():
    assert names.names_disjoint(name_key("清水 翔太"), name_key("山田 健"))
    assert not names.names_disjoint(name_key("村上 由美"), name_key("Yumi Murakami"))
    assert not names.names_disjoint(name_key("Yumi Murakami"), name_key("Yumi Tanaka"))  # a new family name


# ---------------------------------------------------------------- certain links (identifiers)

def test_the_same_address_on_two_platforms_is_one_identifier():
    a = profile("csv", "row-1", email="ymurakami@minato-data.co.jp", display_name="村上 由美")
    b = profile("slack", "U1", email="MAILTO: YMURAKAMI@MINATO-DATA.CO.JP", display_name="Yumi Murakami")
    assert _ids(a) & _ids(b) == {("email", "ymurakami@minato-data.co.jp")}


def test_a_commit_address_links_to_its_github_account_by_id_or_old_login():
    account = profile("github", "4878849", handle="hanako-hayashi", display_name="Hanako Hayashi")
    by_id = profile("git", "git:1", email="4878849+hanako-hayashi@users.noreply.github.com", display_name="h")
    by_login = profile("git", "git:2", email="Hanako-Hayashi@users.noreply.github.com", display_name="h")
    assert _ids(account) & _ids(by_id) and _ids(account) & _ids(by_login)


def test_role_no_reply_and_machine_accounts_carry_no_identifier():
    assert not _ids(profile("connpass", "1", email="admin@minato-data.co.jp", display_name="山田 健"))
    assert not _ids(profile("git", "git:1", email="noreply@github.com", display_name="Deleted User"))
    bot = profile("github", "41898282", handle="github-actions[bot]", display_name="github-actions[bot]")
    assert bot.machine and not _ids(bot)
    assert profile("github", "10137", handle="ghost").machine
    assert profile("git", "git:3", email="49699333+dependabot[bot]@users.noreply.github.com",
                   display_name="dependabot").machine


def test_two_accounts_of_one_provider_are_never_joined_by_what_they_share():
    clusters = identity._Clusters()
    for node, ext in ((("account", "a"), "1"), (("account", "b"), "2")):
        clusters.find(node)
        clusters.holds(node, "github", ext)
    assert clusters.union(("identifier", "x"), ("account", "a"))
    assert not clusters.union(("identifier", "x"), ("account", "b"))  # same e-mail, another GitHub account
    clusters.find(("account", "c"))
    clusters.holds(("account", "c"), "slack", "U1")
    assert clusters.union(("identifier", "x"), ("account", "c"))  # another provider: one person


# ---------------------------------------------------------------- suggestions: must not

def test_colleagues_sharing_a_domain_and_a_given_name_are_not_suggested():
    a = profile("github", "1", email="yumi.hasegawa@minato-data.co.jp", display_name="長谷川 由美",
                org="minato-data.co.jp")
    b = profile("slack", "U2", email="yumi.suzuki@minato-data.co.jp", display_name="鈴木 由美", org="minato-data.co.jp")
    assert compare(a, b) is None and _suggestion(a, b) == 0.0


def test_free_mail_users_are_not_suggested():
    a = profile("connpass", "1", email="okadayuko458@icloud.com", display_name="岡田 優子")
    b = profile("connpass", "2", email="sakamototakashi729@gmail.com", display_name="坂本 隆")
    assert _suggestion(a, b) == 0.0


def test_one_word_names_are_not_suggested():
    a = profile("x", "1", handle="ryo1185", display_name="Ryo")
    b = profile("github", "2", handle="ryo8486", display_name="Ryo")
    assert compare(a, b) is None


def test_placeholders_are_not_suggested():
    a = profile("github", "34240348", handle="deleted-user", display_name="Deleted User")
    b = profile("git", "git:1", email="noreply@github.com", display_name="Deleted User")
    assert compare(a, b) is None and best_match([a], [b]) is None


def test_one_providers_two_ids_are_not_suggested_even_with_one_name():
    a = profile("github", "8995074", handle="yukogoto", email="yuko.goto@devworks.io", display_name="後藤 優子")
    b = profile("github", "65550821", handle="yukogoto422", email="yuko.goto2@devworks.io", display_name="後藤 優子")
    assert compare(a, b) is None
    c = profile("x", "9", handle="yukogoto", display_name="Yuko Goto")
    assert best_match([a, c], [b]) is None  # a developer holding one of them is not suggested with the other


def test_a_role_address_suggests_nothing():
    a = profile("connpass", "1", email="admin@minato-data.co.jp", display_name="清水 翔太", org="minato-data.co.jp")
    b = profile("csv", "row-2", email="admin@minato-data.co.jp", display_name="前田 大輔", org="minato-data.co.jp")
    assert compare(a, b) is None


def test_a_common_handle_of_two_people_is_not_suggested():
    a = profile("github", "1", handle="coder2", display_name="John Smith", attributes={"location": "Seattle, WA"})
    b = profile("x", "2", handle="coder2", display_name="井上健", attributes={"location": "大阪"})
    assert compare(a, b) is None
    c = profile("x", "3", handle="coder2")  # no name to contradict: a generic handle alone is nothing
    assert compare(a, c) is None


def test_a_handle_that_only_spells_the_name_adds_little_to_the_name():
    """People of one name spell handles from it alike (maokobayashi): a name and such a handle stay below 0.7."""
    a = profile("github", "1", handle="maokobayashi", display_name="Mao Kobayashi")
    b = profile("qiita", "q2", handle="mao-kobayashi", display_name="小林 真央")
    assert 0.5 <= _suggestion(a, b) < 0.7


# ---------------------------------------------------------------- suggestions: must

def test_a_name_in_two_scripts_and_one_handle_is_suggested():
    a = profile("github", "20423137", handle="hfujita", display_name="Hina Fujita")
    b = profile("x", "408212278751", handle="Hfujita", display_name="ふじた ひな")
    evidence = compare(a, b)
    assert evidence and {e.kind for e in evidence} >= {"name", "handle"}
    assert _suggestion(a, b) >= 0.5


@pytest.mark.parametrize("other", ["藤田 陽菜", "藤田陽菜", "FUJITA Hina", "フジタ ヒナ", "ふじたひな"])
def test_a_name_alone_in_another_script_is_suggested(other):
    a = profile("github", "1", display_name="Hina Fujita")
    b = profile("connpass", "2", display_name=other)
    assert 0.5 <= _suggestion(a, b) < 0.7  # probable, not more: a person confirms


def test_a_name_and_a_handle_of_its_own_are_a_confident_suggestion():
    a = profile("github", "1", handle="fujita_hina87", display_name="Hina Fujita")
    b = profile("discord", "2", handle="Fujita_Hina87", display_name="藤田 陽菜")
    assert _suggestion(a, b) >= 0.7


def test_a_handle_spelling_the_name_suggests_an_account_without_a_name():
    a = profile("github", "1", display_name="Hina Fujita")
    b = profile("x", "2", handle="hina_fujita")
    assert _suggestion(a, b) >= 0.5


def test_western_names_with_and_without_accents_and_one_handle():
    a = profile("github", "1", handle="sgarcia", display_name="Søren García")
    b = profile("zenn", "2", handle="sgarcia", display_name="GARCIA Soren")
    assert _suggestion(a, b) >= 0.5


def test_confidence_combines_and_is_never_certain():
    strong = [matching.Evidence("name", "x", 0.6), matching.Evidence("handle", "y", 0.9)]
    assert confidence(strong) == matching.MAX_SUGGESTION
    assert confidence([matching.Evidence("name", "x", 0.6)]) == 0.6
