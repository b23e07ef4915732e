"""People's names as comparable keys, whatever script and order they were written in.

"Hina Fujita", "FUJITA Hina", "ふじた ひな", "フジタ ヒナ", "藤田 陽菜" and "藤田陽菜" are one name. Each name
becomes its parts in written order, and each part the set of romaji spellings it may stand for, in one
spelling (Hepburn, long vowels folded: "Gotou", "Gotō", "Goto" and "Gotoh" are one token):

- Latin letters (accents dropped, full-width folded by NFKC) and kana have one reading.
- Kanji have several: 陽菜 is hina, haruna or hinata, 健 is ken or takeshi. A part read from kanji gets the
  readings of the tables below (common family and given names, then the name readings of single characters
  put together) and pykakasi's reading (the dictionary is loaded on first use). A reading that only comes from
  putting characters together or from pykakasi is *uncertain*: a given name that does not match it is not
  proof of two people (``compare_names`` says PARTIAL, not CONFLICT).
- A name written without a space ("藤田陽菜", "ふじたひな", "hinafujita") is split where a known family name
  and a known given name meet; otherwise it stays one part, which still matches a two-part name spelled
  together.

``compare_names`` says how two names relate; funnel.community.matching turns that into evidence.
"""
from __future__ import annotations

import itertools
import re
import unicodedata
from dataclasses import dataclass
from enum import Enum
from functools import cache, cached_property, lru_cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pykakasi

KANA = re.compile(r"[\u3040-\u30ff\uff66-\uff9f]")
KANJI = re.compile(r"[\u3005\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_SPLIT = re.compile(r"[\s,、・·.\u3000_/|()\[\]{}<>\"`@:;!?~*+=#&^$%-]+")
_APOSTROPHES = re.compile(r"['’‘ʼ]")  # inside a name: Jun'ichi, O'Brien
# Latin letters that NFKD does not decompose into a base letter and a mark.
_LATIN_LETTERS = str.maketrans({"ø": "o", "Ø": "O", "æ": "ae", "Æ": "AE", "œ": "oe", "Œ": "OE", "ß": "ss",
                                "ł": "l", "Ł": "L", "đ": "d", "Đ": "D", "þ": "th", "Þ": "TH", "ı": "i"})
_CAMEL = re.compile(r"(?<=[a-z])(?=[A-Z][a-z])")
_LETTERS = re.compile(r"[^a-z]")
_KANJI_RUN = re.compile(r"^([\u3005\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u30f6\u30ce]+)([\u3040-\u30ff]{2,})$")

# Names that are not a person's: a deleted account, a default, a test.
PLACEHOLDER_NAMES = frozenset({
    "deleted user", "deleteduser", "deleted-user", "deleted", "(deleted)", "[deleted]", "ghost", "unknown",
    "unknown user", "anonymous", "anonymous user", "anon", "n/a", "na", "none", "null", "nil", "undefined", "user",
    "test", "test user", "testuser", "guest", "someone", "nobody", "no name", "noname", "name", "your name",
    "admin", "administrator", "root", "me", "-", "?", "github", "git", "名無し", "匿名", "ゲスト", "テスト", "不明",
    "未設定", "退会済みユーザー", "退会ユーザー", "削除済みユーザー",
})

# Common Japanese family names and their readings (several where the same kanji are read two ways).
_FAMILY = """
佐藤:sato 鈴木:suzuki 高橋:takahashi 田中:tanaka 伊藤:ito 伊東:ito 渡辺:watanabe 渡邊:watanabe 渡邉:watanabe
渡部:watanabe,watabe 山本:yamamoto 中村:nakamura 小林:kobayashi 加藤:kato 吉田:yoshida 山田:yamada 佐々木:sasaki
山口:yamaguchi 松本:matsumoto 井上:inoue 木村:kimura 林:hayashi 斎藤:saito 斉藤:saito 齋藤:saito 齊藤:saito
清水:shimizu 山崎:yamazaki,yamasaki 森:mori 池田:ikeda 橋本:hashimoto 阿部:abe 安倍:abe 石川:ishikawa
山下:yamashita 中島:nakajima,nakashima 石井:ishii 小川:ogawa 前田:maeda 岡田:okada 長谷川:hasegawa 藤田:fujita
後藤:goto 近藤:kondo 村上:murakami 遠藤:endo 青木:aoki 坂本:sakamoto 福田:fukuda 太田:ota 大田:ota 西村:nishimura
藤井:fujii 金子:kaneko 岡本:okamoto 藤原:fujiwara 中野:nakano 三浦:miura 原田:harada 中川:nakagawa 松田:matsuda
竹内:takeuchi 小野:ono 田村:tamura 中山:nakayama 和田:wada 石田:ishida 森田:morita 上田:ueda 原:hara 内田:uchida
柴田:shibata 酒井:sakai 宮崎:miyazaki 横山:yokoyama 高木:takagi 安藤:ando 宮本:miyamoto 大野:ono 小島:kojima
工藤:kudo 谷口:taniguchi 今井:imai 高田:takada 丸山:maruyama 増田:masuda 杉山:sugiyama 村田:murata 大塚:otsuka
小山:koyama,oyama 平野:hirano 藤本:fujimoto 河野:kono,kawano 上野:ueno 野口:noguchi 武田:takeda 松井:matsui
千葉:chiba 岩崎:iwasaki 菅原:sugawara 木下:kinoshita 久保:kubo 佐野:sano 野村:nomura 松尾:matsuo 市川:ichikawa
菊地:kikuchi 菊池:kikuchi 杉本:sugimoto 古川:furukawa 大西:onishi 島田:shimada 水野:mizuno 桜井:sakurai
櫻井:sakurai 高野:takano 吉川:yoshikawa 山内:yamauchi 西田:nishida 飯田:iida 西川:nishikawa 小松:komatsu
北村:kitamura 安田:yasuda 五十嵐:igarashi 川口:kawaguchi 平田:hirata 関:seki 中田:nakata,nakada 久保田:kubota
服部:hattori 東:higashi,azuma 岩田:iwata 土屋:tsuchiya 川崎:kawasaki 福島:fukushima 本田:honda 辻:tsuji
樋口:higuchi 秋山:akiyama 田口:taguchi 永井:nagai 山中:yamanaka 中西:nakanishi 吉村:yoshimura 川上:kawakami
石原:ishihara 大橋:ohashi 松岡:matsuoka 馬場:baba 浅野:asano 荒木:araki 大久保:okubo 野田:noda 田辺:tanabe
川村:kawamura 星野:hoshino 黒田:kuroda 堀:hori 尾崎:ozaki 望月:mochizuki 永田:nagata 熊谷:kumagai 内藤:naito
松村:matsumura 西山:nishiyama 大谷:otani 平井:hirai 大島:oshima 岩本:iwamoto 片山:katayama 本間:honma
早川:hayakawa 横田:yokota 岡崎:okazaki 荒井:arai 新井:arai 大石:oishi 宮田:miyata 小田:oda 石橋:ishibashi
篠原:shinohara 須藤:sudo 河合:kawai 大森:omori 高井:takai 萩原:hagiwara 小池:koike 小西:konishi 桑原:kuwabara
宮下:miyashita 一ノ瀬:ichinose 二宮:ninomiya 三宅:miyake 田島:tajima 上村:uemura,kamimura 林田:hayashida
森本:morimoto 吉野:yoshino 浜田:hamada 松下:matsushita 野崎:nozaki 長尾:nagao 関口:sekiguchi 中尾:nakao
石山:ishiyama 細川:hosokawa 高山:takayama 小沢:ozawa 小澤:ozawa 西:nishi 北川:kitagawa 松永:matsunaga
宮川:miyagawa 原口:haraguchi 富田:tomita 川田:kawada 堤:tsutsumi 森山:moriyama 大川:okawa 谷:tani 白石:shiraishi
中井:nakai 青山:aoyama 福井:fukui 三上:mikami 竹田:takeda 奥村:okumura 佐久間:sakuma 広瀬:hirose 岡:oka
"""

# Common given names and their readings.
_GIVEN = """
翔太:shota 翔:sho,kakeru,shou 大輔:daisuke 大介:daisuke 健:ken,takeshi,tsuyoshi,takeru 健太:kenta 健一:kenichi
健二:kenji 健司:kenji 賢治:kenji 拓也:takuya 拓海:takumi 直樹:naoki 大樹:daiki,hiroki,taiki 大翔:hiroto,haruto,yamato
陽翔:haruto,hinato,hiroto 蓮:ren 湊:minato,so 悠真:yuma,haruma 悠人:yuto,haruto 陽太:hinata,yota,hita 颯太:sota
蒼:ao,so 樹:itsuki,tatsuki 隆:takashi,ryu 誠:makoto 浩:hiroshi,ko 博:hiroshi 学:manabu,satoru 修:osamu 稔:minoru
剛:tsuyoshi,go,takeshi 武:takeshi 達也:tatsuya 和也:kazuya 哲也:tetsuya 雄太:yuta 優太:yuta 裕太:yuta 勇気:yuki
亮:ryo,akira,makoto 涼:ryo,suzu 亮太:ryota 良太:ryota 涼太:ryota 太郎:taro 一郎:ichiro 次郎:jiro 浩二:koji
康介:kosuke 耕平:kohei 翔平:shohei 祐介:yusuke 雄介:yusuke 悠斗:yuto,haruto 陸:riku 海斗:kaito 翼:tsubasa
大地:daichi 拓真:takuma 隼人:hayato 秀樹:hideki 英樹:hideki 正樹:masaki 雅樹:masaki 直人:naoto 智也:tomoya
俊介:shunsuke 駿:shun,hayato 純一:junichi 潤:jun 淳:jun,atsushi 敦:atsushi 聡:satoshi,so 智:satoshi,tomo
悟:satoru 渉:wataru 豊:yutaka 実:minoru 明:akira 彰:akira 光:hikaru,hikari 勇:isamu,yu 健太郎:kentaro
大和:yamato 颯:hayate,so 陽向:hinata 湊斗:minato 結翔:yuito 蒼空:sora 悠:yu,haruka 優:yu,masaru,yuu
和樹:kazuki 一輝:kazuki 大輝:daiki,hiroki 光太:kota 康太:kota 航:wataru,ko 航平:kohei 拓:taku,hiraku
亮介:ryosuke 涼介:ryosuke 圭:kei 慎一:shinichi 信也:shinya 伸也:shinya 慎也:shinya 真也:shinya 雅人:masato
将太:shota 将:sho,masaru 翔一:shoichi 裕:yu,hiroshi,yutaka 崇:takashi 貴之:takayuki 孝:takashi 哲:satoshi,tetsu
恭平:kyohei 修平:shuhei 昌平:shohei 俊:shun,takashi 遼:ryo,haruka 遼太:ryota 蒼太:sota 奏太:sota 颯真:soma
陽菜:hina,haruna,hinata,hana 花子:hanako 真央:mao 由美:yumi 優子:yuko 裕子:yuko,hiroko 祐子:yuko 陽子:yoko
洋子:yoko 恵子:keiko 京子:kyoko 幸子:sachiko,yukiko 久美子:kumiko 美咲:misaki 美穂:miho 結衣:yui 結菜:yuna,yuina
葵:aoi 桜:sakura 愛:ai,megumi,mana 彩:aya,sai 彩花:ayaka 美紀:miki 真由美:mayumi 智子:tomoko,satoko 直子:naoko
明美:akemi 恵:megumi,kei 舞:mai 麻衣:mai 由佳:yuka 優花:yuka 愛子:aiko 春香:haruka 遥:haruka 遙:haruka
美月:mizuki,mitsuki 七海:nanami 千尋:chihiro 奈々:nana 菜々子:nanako 香織:kaori 沙織:saori 詩織:shiori 瞳:hitomi
亜美:ami 杏:an,anzu 凛:rin 紬:tsumugi 芽依:mei 莉子:riko 美羽:miu 心春:koharu 結愛:yua,yui 楓:kaede 翠:midori
千夏:chinatsu 真理:mari 麻美:asami 里美:satomi 玲奈:rena 未来:miku,mirai 理恵:rie 早紀:saki 咲:saki 紗希:saki
梨花:rika 友美:tomomi 由紀:yuki 有紀:yuki 雪:yuki 由香:yuka 由貴:yuki 絵美:emi 恵美:emi,megumi 栞:shiori 澪:mio
優奈:yuna 優衣:yui 萌:moe 彩乃:ayano 夏美:natsumi 菜摘:natsumi 美香:mika 真紀:maki 亜希子:akiko 明子:akiko
晶子:akiko 典子:noriko 紀子:noriko 順子:junko 純子:junko 和子:kazuko 美和:miwa 真美:mami 由美子:yumiko
さくら:sakura 美優:miyu 陽葵:himari,hinata,hina 凜:rin 杏奈:anna 結:yui,yu 日菜:hina ひな:hina 菜月:natsuki
奈緒:nao 直美:naomi 美奈:mina 美帆:miho 愛美:manami,aimi 舞子:maiko 桃子:momoko 朋子:tomoko 弘子:hiroko
千晴:chiharu 晴美:harumi 明日香:asuka 飛鳥:asuka 綾:aya 綾香:ayaka 真子:mako 文子:fumiko 美雪:miyuki 深雪:miyuki
"""

# Name readings of single characters, put together for a given name the table above lacks (uncertain readings).
_CHARACTERS = """
陽:haru,hi,yo,aki,hina 菜:na 翔:sho,to,kakeru 太:ta,futo 大:dai,hiro,tai,o,masa 輔:suke 介:suke 健:ken,take
一:ichi,kazu,hajime 郎:ro 二:ji 次:ji 三:zo,mitsu 優:yu,masa 裕:yu,hiro 祐:yu,suke 悠:yu,haru,hisa 雄:yu,o,take
勇:yu,isa 子:ko 美:mi,yoshi 由:yu,yoshi 真:ma,shin,masa 央:o,hisa 花:hana,ka 香:ka,kaori 佳:ka,yoshi 咲:saki,sa
結:yu,yui 衣:i,e 愛:ai,mana,a 奈:na 那:na 希:ki,nozomi 紀:ki,nori 樹:ki,ju,itsuki 輝:teru,ki,hikaru 貴:taka,ki
也:ya 哉:ya 斗:to 人:to,hito 翼:tsubasa 海:kai,umi,mi 拓:taku,hiro 直:nao,tada 智:tomo,chi 和:kazu,wa
正:masa,sho 雅:masa 昌:masa,sho 浩:hiro,ko 博:hiro 宏:hiro 弘:hiro 広:hiro 洋:hiro,yo 俊:shun,toshi 駿:shun
春:haru 晴:haru,sei 夏:natsu,ka 秋:aki 冬:fuyu 明:aki,mei 亮:ryo,aki,suke 良:ryo,yoshi 涼:ryo,suzu 龍:ryu,tatsu
竜:ryu,tatsu 隆:taka,ryu 孝:taka,ko 高:taka,ko 達:tatsu 哲:tetsu 康:ko,yasu 耕:ko 幸:ko,yuki,sachi
光:mitsu,hikari,ko 平:hei,hira 恵:kei,e,megumi 京:kyo 彩:aya,sa 綾:aya 理:ri,masa 里:ri,sato 莉:ri 梨:ri
千:chi,kazu 七:nana 乃:no 野:no 葉:ha,yo 穂:ho 帆:ho 保:ho,yasu 歩:ayumi,ho 未:mi 実:mi,minoru 心:shin,ko,kokoro
月:tsuki 星:sei,hoshi 空:sora,ku 陸:riku 蓮:ren 凛:rin 琴:koto 詩:shi,uta 織:ori 沙:sa 紗:sa 早:sa 小:ko
舞:mai 麻:ma,asa 亜:a 杏:an 伸:shin,nobu 信:shin,nobu 慎:shin 新:shin 進:shin 修:shu,osamu 秀:hide,shu
英:hide,ei 栄:ei 剛:go,take 武:take 誠:sei,makoto 聡:so,satoshi 悟:go,satoru 純:jun 潤:jun 順:jun 淳:jun,atsu
敦:atsu 篤:atsu 豊:toyo,yutaka 勝:katsu,sho 克:katsu 義:yoshi 芳:yoshi 善:yoshi 喜:ki,yoshi 吉:yoshi 文:fumi
史:shi,fumi 久:hisa,ku 恭:kyo,yasu 匠:takumi 湊:minato,so 颯:so 蒼:ao,so 奏:kana,so 朝:asa 萌:moe 澪:mio
紬:tsumugi 楓:kaede 葵:aoi 桜:sakura 瞳:hitomi 遥:haru 瑞:mizu 翠:midori 晶:aki,sho 章:aki,sho 彰:aki,sho
昭:aki,sho 郁:iku,fumi 則:nori 典:nori 範:nori 徳:nori 宗:mune,so 志:shi 司:shi,tsukasa 士:shi 治:ji,haru
弥:ya,mi 矢:ya 基:moto,ki 元:moto 航:ko,wataru 圭:kei 啓:kei,hiro 慶:kei 敬:kei,taka 景:kei 将:sho,masa
貴:taka 崇:taka 音:ne,oto,on 柚:yu,yuzu 芽:me 羽:u,ha,wa 凪:nagi 律:ritsu 碧:ao,aoi,midori 暖:haru,dan
怜:rei,sato 玲:rei 礼:rei,aya 麗:rei 雫:shizuku 華:ka,hana 響:hibiki,kyo 朔:saku 伊:i 慧:kei,sato 賢:ken,masa
謙:ken 研:ken 憲:ken,nori 兼:ken,kane 朱:aka,shu 紅:beni,ku 柊:shu,hiiragi 椿:tsubaki 藍:ai 寛:hiro,kan
之:yuki 行:yuki 雪:yuki 友:tomo 朋:tomo 知:tomo 共:tomo 日:hi,ka 奈:na 々:- 菜:na 絵:e 江:e
枝:e 依:i 唯:yui 衣:i 生:ki,o 季:ki 紀:ki 暉:ki 揮:ki 起:ki 桃:momo 智:tomo 美:mi 深:mi 民:mi 水:mi
"""


def _table(text: str) -> dict[str, tuple[str, ...]]:
    out: dict[str, tuple[str, ...]] = {}
    for item in text.split():
        written, readings = item.split(":")
        out[written] = tuple(r for r in readings.split(",") if r != "-")
    return out


FAMILY_NAMES = _table(_FAMILY)
GIVEN_NAMES = _table(_GIVEN)
NAME_CHARACTERS = _table(_CHARACTERS)


class NameMatch(Enum):
    SAME = "same"  # every part is the same (one script, or kana/romaji which have one reading)
    SAME_READING = "same_reading"  # the same once kanji are read (a table's reading)
    SAME_COMPACT = "same_compact"  # one name is the other written without a space
    PARTIAL = "partial"  # one part agrees, the other is kanji whose reading is uncertain
    CONFLICT = "conflict"  # two full names that cannot be one
    UNKNOWN = "unknown"  # too little to compare (a single word, an initial)


@dataclass(frozen=True)
class NamePart:
    written: str  # as written (NFKC)
    readings: frozenset[str]  # folded romaji spellings
    kanji: bool
    certain: bool  # the readings come from the name itself (latin, kana) or a table of names

    @cached_property
    def primary(self) -> str:
        return min(self.readings, key=lambda r: (len(r), r))


@dataclass(frozen=True)
class NameKey:
    """A name as its parts in written order; ``tokens`` the sorted primary spellings (for display and search)."""
    parts: tuple[NamePart, ...]

    @cached_property
    def tokens(self) -> tuple[str, ...]:
        return tuple(sorted(p.primary for p in self.parts))

    @cached_property
    def from_kanji(self) -> bool:
        return any(p.kanji for p in self.parts)

    @cached_property
    def full(self) -> bool:
        """Two or more parts of two letters or more: one word ("Ryo", "Alex") says little about a person."""
        return len(self.parts) >= 2 and all(len(p.primary) >= 2 for p in self.parts)

    @cached_property
    def all_token_set(self) -> frozenset[str]:
        return frozenset(r for p in self.parts for r in p.readings)

    def all_tokens(self) -> frozenset[str]:
        return self.all_token_set

    def spelled_together(self) -> frozenset[str]:
        return self.spelled_together_set

    @cached_property
    def spelled_together_set(self) -> frozenset[str]:
        """The name without spaces, in either order, for every reading ("fujitahina", "hinafujita")."""
        if len(self.parts) == 1:
            return frozenset(self.parts[0].readings)
        if len(self.parts) != 2:
            return frozenset({"".join(p.primary for p in self.parts)})
        a, b = self.parts
        return frozenset({fold_romaji(x + y) for x in a.readings for y in b.readings} | {
            fold_romaji(y + x) for x in a.readings for y in b.readings})


@cache
def _kakasi() -> pykakasi.kakasi:
    import pykakasi

    return pykakasi.kakasi()


@lru_cache(maxsize=65536)
def fold_romaji(token: str) -> str:
    """One spelling for the romanisations of a Japanese syllable sequence (Hepburn, Kunrei, long vowels)."""
    t = token
    for old, new in (("sya", "sha"), ("syu", "shu"), ("syo", "sho"), ("tya", "cha"), ("tyu", "chu"), ("tyo", "cho"),
                     ("zya", "ja"), ("zyu", "ju"), ("zyo", "jo"), ("jya", "ja"), ("jyu", "ju"), ("jyo", "jo"),
                     ("si", "shi"), ("ti", "chi"), ("tu", "tsu"), ("zi", "ji"), ("du", "zu"), ("di", "ji")):
        t = t.replace(old, new)
    t = t.replace("shhi", "shi").replace("cchi", "tchi").replace("tsstsu", "tsu")
    t = re.sub(r"(?<![sc])hu", "fu", t)
    t = re.sub(r"m(?=[bmp])", "n", t)  # Homma / Honma
    t = re.sub(r"oh(?![aeiou])", "o", t)  # Gotoh, Ohno
    t = re.sub(r"(?<=o)u|(?<=o)o", "", t)  # Gotou, Satoo -> Goto, Sato
    t = re.sub(r"([aeiu])\1", r"\1", t)  # Yuuko -> Yuko
    return t


def _latin(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.translate(_LATIN_LETTERS))
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch)).casefold()


def _kana_reading(text: str) -> str:
    return fold_romaji(_LETTERS.sub("", "".join(p["hepburn"] for p in _kakasi().convert(text)).casefold()))


def _folded(readings: Any) -> frozenset[str]:
    return frozenset(f for f in (fold_romaji(_LETTERS.sub("", r)) for r in readings) if f)


@lru_cache(maxsize=8192)
def _kanji_part(written: str, family: bool | None) -> NamePart:
    """A part written in kanji: the tables' readings (certain) or characters' readings put together, and
    pykakasi's reading (uncertain)."""
    tables = {True: (FAMILY_NAMES,), False: (GIVEN_NAMES,), None: (FAMILY_NAMES, GIVEN_NAMES)}[family]
    known = tuple(r for table in tables for r in table.get(written, ()))
    readings = set(known)
    if not known and 1 <= len(written) <= 3 and all(ch in NAME_CHARACTERS for ch in written):
        options = [NAME_CHARACTERS[ch] or ("",) for ch in written]
        options = [options[0], *(_with_rendaku(o) for o in options[1:])]
        readings |= {"".join(c) for c in itertools.islice(itertools.product(*options), 96)}
    readings.add(_kana_reading(written))
    return NamePart(written, _folded(readings), kanji=True, certain=bool(known))


_RENDAKU = {"k": "g", "s": "z", "t": "d", "h": "b", "f": "b"}


def _with_rendaku(readings: tuple[str, ...]) -> tuple[str, ...]:
    """A character after the first may be voiced (結月 yu + tsuki = yuzuki, 花子 but 美香 mi + ka)."""
    voiced = []
    for r in readings:
        if r.startswith(("ts", "ch", "sh")):
            voiced.append({"ts": "z", "ch": "j", "sh": "j"}[r[:2]] + r[2:])
        elif r[:1] in _RENDAKU:
            voiced.append(_RENDAKU[r[0]] + r[1:])
    return tuple(dict.fromkeys((*readings, *voiced)))


def _split_kanji(run: str, known_only: bool = False) -> list[str]:
    """A kanji name written without a space: a known family name at the start, the rest the given name. Beside
    other words ("藤田陽菜@Tokyo") only where a known family and a known given name meet."""
    cuts = range(min(len(run) - 1, 4), 0, -1)
    rules = [lambda f, g: f in FAMILY_NAMES and g in GIVEN_NAMES]
    if len(run) >= 3 and not known_only:  # two characters are a name (翔太) unless both halves are known (森健)
        rules += [lambda f, g: g in GIVEN_NAMES, lambda f, g: f in FAMILY_NAMES]
    for accept in rules:
        for cut in cuts:
            if accept(run[:cut], run[cut:]):
                return [run[:cut], run[cut:]]
    pieces = [p["orig"] for p in _kakasi().convert(run) if p["orig"].strip()]
    return pieces if len(pieces) == 2 and len(run) >= 3 and not known_only else [run]


@cache
def _reading_sets() -> tuple[frozenset[str], frozenset[str]]:
    family = frozenset(_folded(r for readings in FAMILY_NAMES.values() for r in readings))
    given = frozenset(_folded(r for readings in GIVEN_NAMES.values() for r in readings))
    return family, given


def _split_spelled_together(token: str) -> list[str]:
    """A romaji or kana name written without a space, where a known family and given name meet."""
    family, given = _reading_sets()
    if len(token) < 5:
        return [token]
    for cut in range(2, len(token) - 1):
        head, tail = token[:cut], token[cut:]
        if (head in family and tail in given) or (head in given and tail in family):
            return [head, tail]
    return [token]


def _parts(text: str) -> list[NamePart]:
    parts: list[NamePart] = []
    pieces = [p for p in _SPLIT.split(_CAMEL.sub(" ", _APOSTROPHES.sub("", text))) if p]
    for piece in pieces:
        if KANJI.search(piece):
            mixed = _KANJI_RUN.match(piece)  # 斎藤さくら: family name in kanji, given name in kana
            written = ([mixed.group(1), mixed.group(2)] if mixed else
                       _split_kanji(piece, known_only=len(pieces) > 1) if len(piece) >= 2 else [piece])
            for w in written:
                if KANJI.search(w):
                    family = None if len(written) == 1 else (w == written[0])
                    parts.append(_kanji_part(w, family))
                else:
                    parts.append(_plain_part(w, _kana_reading(w)))
        elif KANA.search(piece):
            parts.append(_plain_part(piece, _kana_reading(piece)))
        else:
            parts.append(_plain_part(piece, fold_romaji(_LETTERS.sub("", _latin(piece)))))
    parts = [p for p in parts if p.readings]
    if len(parts) == 1 and not parts[0].kanji:
        split = _split_spelled_together(parts[0].primary)
        if len(split) == 2:
            parts = [_plain_part(parts[0].written, split[0]), _plain_part(parts[0].written, split[1])]
    return parts


def _plain_part(written: str, reading: str) -> NamePart:
    return NamePart(written, frozenset({reading}) if reading else frozenset(), kanji=False, certain=True)


@lru_cache(maxsize=65536)
def name_key(display_name: str | None) -> NameKey | None:
    """The comparable form of a person's name, or None for no name, a placeholder or a bot."""
    if not display_name:
        return None
    text = unicodedata.normalize("NFKC", display_name).strip()
    if not text or is_placeholder(text) or is_bot_name(text):
        return None
    parts = _parts(text)
    if not parts:
        return None
    return NameKey(tuple(parts))


def _agree(a: NamePart, b: NamePart) -> bool:
    return bool(a.readings & b.readings)


@lru_cache(maxsize=131072)
def compare_names(a: NameKey, b: NameKey) -> tuple[NameMatch, str]:
    """How two names relate, with what was compared (for the evidence's detail)."""
    if a.full and b.full:
        if len(a.parts) == 2 and len(b.parts) == 2:
            a0, a1 = a.parts
            for b0, b1 in (b.parts, b.parts[::-1]):
                if _agree(a0, b0) and _agree(a1, b1):
                    if [p.written for p in a.parts] == [p.written for p in (b0, b1)] or not (
                            a.from_kanji or b.from_kanji):
                        return NameMatch.SAME, " ".join(a.tokens)
                    reading = " ".join(sorted(next(iter(sorted(x.readings & y.readings)))
                                              for x, y in ((a0, b0), (a1, b1))))
                    return NameMatch.SAME_READING, f"{_written(a)} / {_written(b)} read {reading}"
            for b0, b1 in (b.parts, b.parts[::-1]):
                for (x, other_x), (y, other_y) in (((a0, a1), (b0, b1)), ((a1, a0), (b1, b0))):
                    if _agree(x, y) and len(x.primary) >= 2:
                        if not (other_x.certain and other_y.certain):
                            return NameMatch.PARTIAL, (f"{_written(a)} / {_written(b)}: {x.primary} agrees, "
                                                       f"{other_x.written}/{other_y.written} may be one name read "
                                                       "two ways")
        else:
            small, large = (a, b) if len(a.parts) <= len(b.parts) else (b, a)
            if all(any(_agree(p, q) for q in large.parts) for p in small.parts):
                return (NameMatch.SAME_READING if a.from_kanji or b.from_kanji else NameMatch.SAME,
                        f"{_written(small)} within {_written(large)}")
        return NameMatch.CONFLICT, f"{_written(a)} / {_written(b)}"
    if a.full != b.full:
        single, whole = (a, b) if b.full else (b, a)
        if len(single.parts) == 1 and len(single.parts[0].primary) >= 5 and (
                single.parts[0].readings & whole.spelled_together()):
            return NameMatch.SAME_COMPACT, f"{_written(single)} is {_written(whole)} without a space"
    return NameMatch.UNKNOWN, ""


def names_disjoint(a: NameKey, b: NameKey) -> bool:
    """Two full names with nothing in common in any reading ("清水 翔太" and "山田 健"): two people, whatever
    else they share (a team's mailbox)."""
    if not (a.full and b.full) or a.all_tokens() & b.all_tokens():
        return False
    return not (a.spelled_together() & b.spelled_together())


def _written(key: NameKey) -> str:
    return " ".join(p.written for p in key.parts)


BOT_NAME = re.compile(r"(\[bot\]|[-_ ]bot|^bot[-_ ]|^bot$|\bbot\b)$|^(dependabot|renovate|github-actions|codecov|"
                      r"snyk|greenkeeper|mergify|imgbot|allcontributors|all-contributors|pre-commit-ci|"
                      r"semantic-release|web-flow|actions-user|netlify|vercel|stale|copilot)\b",
                      re.IGNORECASE)


def is_bot_name(text: str | None) -> bool:
    return bool(text) and bool(BOT_NAME.search(text.strip()))  # type: ignore[union-attr]


def is_placeholder(text: str | None) -> bool:
    if not text:
        return False
    return unicodedata.normalize("NFKC", text).strip().casefold() in PLACEHOLDER_NAMES


def compact(text: str | None) -> str:
    """Letters and digits only, folded: the form in which handles and e-mail local parts are compared."""
    if not text:
        return ""
    return re.sub(r"[^0-9a-z]", "", _latin(unicodedata.normalize("NFKC", text)))


@lru_cache(maxsize=65536)
def handle_spellings(key: NameKey) -> dict[str, bool]:
    """Handles a person of this name commonly picks, each with whether it spells the whole name
    (hanakohayashi, hayashihanako: True; hhayashi, hanakoh: False)."""
    if len(key.parts) != 2 or not key.full:
        return {}
    a, b = key.parts
    spellings: dict[str, bool] = {}
    for x in a.readings:
        for y in b.readings:
            for first, last in ((x, y), (y, x)):
                for spelled, whole in ((first + last, True), (first[0] + last, False), (first + last[0], False)):
                    folded = fold_romaji(spelled)
                    spellings[folded] = spellings.get(folded, False) or whole
    return spellings


def describe(key: NameKey | Any) -> str:
    return " ".join(key.tokens) if isinstance(key, NameKey) else ""
