"""Names of people in lowercase transcripts, told apart from artists, authors and public figures by context.

A name is taken when a cue says a person is meant ("call jennifer", "my name is ...", "tell mom and sarah",
"messages from david") or, without a cue, when the word is a given name that is not also an English word
("catherine is late"). Names without a strong cue are not taken inside a media or public-figure request
("play songs by john legend", "who is barack obama", "add taylor swift to my playlist"), nor as a lone word
after "in"/"to"/"near" ("weather in austin").
"""

from __future__ import annotations

from enum import IntEnum

from earmark.pii.lexicon import Lexicon, lexicon
from earmark.pii.spoken import MONTHS, NUMBER_WORDS, Token


class Cue(IntEnum):
    NONE = 0  # no context: only unambiguous given names
    MEDIUM = 1  # "hi ...", "it's ...", "... says": given names and unknown words
    CONTEXT = 2  # "mr ...", "i'm ...", "a table for ...": also surnames, but not in a media request
    STRONG = 3  # "call ...", "my wife ...", "messages from ...": any given name, surname or unknown word
    SELF = 4  # "my name is ...": any word that is not a function word


def _words(s: str) -> frozenset[str]:
    return frozenset(s.split())


CONTACT_VERBS = _words(
    """call phone ring dial text txt message msg email mail tell remind ask invite notify ping facetime skype
    whatsapp contact page buzz meet greet thank congratulate venmo zelle visit reply forward cc bcc send
    facetiming calling texting messaging emailing"""
)
# What a speech recognizer writes for a contact verb it misheard ("call" -> "cool").
MISHEARD_CONTACT_VERBS = _words("cool col")
RELATIONS = _words(
    """mom mum mommy mother dad daddy father wife husband son daughter brother sister friend buddy pal boss
    manager colleague coworker neighbor neighbour partner girlfriend boyfriend fiance fiancee cousin aunt
    auntie uncle grandma grandpa granny grandmother grandfather nana papa mama babe kid kids teacher
    dentist therapist lawyer nanny babysitter roommate landlord assistant sis bro bff stepmom stepdad niece
    nephew godmother godfather supervisor client doctor coach tutor hubby wifey spouse classmate"""
)
TITLES = _words("mr mrs ms miss mister missus dr doctor prof professor sir madam madame dame lady lord rev father")
GREETINGS = _words("hi hello hey dear thanks bye goodbye congrats congratulations yo sincerely regards")
_MESSAGE_NOUNS = _words(
    """message messages text texts email emails mail voicemail voicemails call calls missed note notes
    letter letters reply replies invite invitation dm dms chat notification notifications"""
)
_SEND_VERBS = _words(
    """send sent write wrote talk talking speak speaking say reply respond forward give gave introduce wave
    message text email mail read show pass lend owe transfer deliver"""
)
_MEETING_NOUNS = _words(
    """meeting lunch dinner breakfast coffee appointment call chat date playdate meet schedule session game
    drinks brunch interview conference sync catch hangout"""
)
_BOOKING = _words("book booking table reservation reserve spot seat seats restaurant")
_AFTER_NAME = _words(
    """says said texted called emailed messaged wrote asked wants needs replied call text email message
    reply write lives lived works worked answered shouted moved loves likes"""
)
_CONTACT_NOUNS = _words(
    """phone number mobile cell email address birthday house place office home work cellphone landline
    contact voicemail"""
)
ASSISTANTS = _words("alexa siri google cortana bixby echo computer assistant")
# Places that are also given names (the SSA list has "arizona", "egypt", "france"): without a strong
# cue they are read as the place. US states, countries and cities that people are named after.
PLACES = _words(
    """alabama alaska arizona arkansas california colorado connecticut delaware florida georgia hawaii idaho
    illinois indiana iowa kansas kentucky louisiana maine maryland massachusetts michigan minnesota
    mississippi missouri montana nebraska nevada hampshire jersey mexico york carolina dakota ohio oklahoma
    oregon pennsylvania rhode tennessee texas utah vermont virginia washington wisconsin wyoming
    america canada brazil argentina chile peru bolivia colombia france germany italy spain portugal ireland
    england scotland wales britain egypt israel jordan lebanon syria india china japan korea kenya nigeria
    ghana africa asia europe australia russia ukraine poland austria belgium holland denmark norway sweden
    finland greece turkey iran iraq cuba haiti jamaica panama malaysia indonesia thailand vietnam
    philippines benin chad niger mali guinea gabon georgia armenia sudan libya tunisia morocco
    austin houston dallas jackson madison paris florence charlotte savannah phoenix sydney victoria orlando
    denver tyler chester lincoln augusta camden columbus aurora alexandria marion salem troy mesa elgin
    helena raleigh cleveland lafayette trenton sherman vernon laurel berkeley tucson vienna geneva sofia
    regina adelaide brisbane kent devon boston atlanta memphis nashville aspen cairo rome milan london
    dublin berlin brooklyn chelsea"""
)
_PLACE_BEFORE = _words(
    """west east north south saint st lake mount mt port fort new san santa los las point cape glen rue rua
    via calle ul avenida piazza plac cite"""
)
_PLACE_AFTER = _words(
    """city county state park forest valley beach springs falls heights island islands river creek lake
    hills village town township bay harbor airport center centre national mountain mountains canyon station
    street avenue road square bridge university college school hospital church restaurant cafe bar grill
    hotel inn museum library theatre theater cinema mall company records cobble"""
)
STOP = (
    _words(
        """i me my mine myself you your yours he him his she her hers it its we us our they them their
    this that these those the a an and or but if then so to of in on at by for from with about into onto
    over under
    up down out off again back now later today tonight tomorrow yesterday please thanks thank yes no not
    all any some every each more most less very just only also too here there where when what which who
    whom whose why how is am are was were be been being do does did have has had will would can could
    shall should may might must let lets let's im i'm it's that's what's there's here's youre you're okay
    ok hey hi hello oh um uh like well right first last next new old one ones someone somebody anyone
    everyone everybody nobody people person guy guys girl boy man woman lady men women family home work
    house office school everybody'll know say said tell ask see get got go going gonna wanna want need
    make take give find look play stop start set turn open close show read put keep bring send sends
    message number phone mobile cell email address birthday name names called named as than because
    am pm minutes minute hours hour seconds times dollars percent degrees o'clock morning afternoon evening
    night week weekend month year monday tuesday wednesday thursday friday saturday sunday christmas
    easter happy dear hope soon asap quick quickly real really still yet ever never always sometimes"""
    )
    | ASSISTANTS
    | RELATIONS
    | NUMBER_WORDS
    | frozenset(MONTHS)
)
_MEDIA_WORDS = _words(
    """play playing played listen listening hear queue shuffle stream streaming watch watching read
    reading sing singing song songs album albums track tracks tune tunes music playlist playlists
    artist artists band bands singer singers soundtrack book books novel novels author authors writer
    poem poems movie movies film films show shows series episode episodes season actor actors actress
    starring director directed cast trailer podcast podcasts audiobook audiobooks radio spotify pandora
    deezer youtube netflix hulu concert concerts lyrics saga painting game games picture pictures tv
    television cinema showtimes theater theatre record records video videos documentary chapter rapper
    composer musician painter celebrity president senator footballer player players sang wrote written
    rate rating star stars points novelist biography wikipedia famous cinemas screening by melody
    iheart iheartradio lastfm soundcloud itunes napster tidal vimeo groove zvooq slacker showing photograph
    title creative theatres theaters
    weather forecast rain raining snow snowing windy hot hotter cold colder warm warmer humid temperature
    sunny cloudy storm stormy hail foggy chilly freezing"""
)
# Questions about a public figure: "who is ...", "how old is ...", "tell me about ...".
_PUBLIC_QUESTIONS = (
    ("who", "is"), ("who's",), ("who", "was"), ("how", "old"), ("how", "tall"), ("tell", "me", "about"),
    ("facts", "about"), ("news", "about"), ("look", "up"), ("search", "for"), ("when", "was"),
    ("where", "was"), ("net", "worth"), ("married",), ("died",), ("quotes",), ("what", "did"), ("put", "on"),
)  # fmt: skip
_CLAUSE_BREAKS = CONTACT_VERBS | _words("then also")
_PLACE_PREPOSITIONS = _words("in at near around to from of visit visiting toward towards outside inside")


def _base(norm: str) -> str:
    return norm[:-2] if norm.endswith("'s") and len(norm) > 2 else norm


def _nameish(word: str, lex: Lexicon) -> bool:
    """A word that could be part of a name at all: letters, not a function word."""
    return word.isalpha() and word not in STOP and len(word) > 1


def _unknown(word: str, lex: Lexicon) -> bool:
    """Not an English word nor a listed name: "rubija", "kreutzmann"."""
    return _nameish(word, lex) and word not in lex.english and not lex.is_first(word) and word not in lex.last


# Names that are also function words or name particles ("al bakri", "rue de la gare"): only after "call".
_CUE_ONLY_NAMES = _words("will may june april august pat sue al de la le el di da du van von del")


def _accepts_first(word: str, cue: Cue, lex: Lexicon) -> bool:
    if cue >= Cue.STRONG and word in _CUE_ONLY_NAMES:
        return True
    if not _nameish(word, lex):
        return False
    if cue >= Cue.SELF:
        return True
    if cue < Cue.STRONG and word in PLACES:
        return False
    if cue >= Cue.CONTEXT:
        return lex.is_first(word) or lex.is_plain_last(word) or _unknown(word, lex)
    if word in MONTHS:
        return False
    if cue == Cue.MEDIUM:
        return lex.is_plain_first(word) or _unknown(word, lex)
    return lex.is_plain_first(word)


def _accepts_next(word: str, lex: Lexicon) -> bool:
    """A surname (or second given name) after a first name: "smith", "hertzog", "ann"."""
    if not _nameish(word, lex) or word in _AFTER_NAME or word in PLACES or word in _PLACE_AFTER:
        return False
    return lex.is_common_last(word) or lex.is_plain_last(word) or lex.is_plain_first(word) or _unknown(word, lex)


def _name_end(norms: list[str], i: int, cue: Cue, lex: Lexicon) -> int | None:
    """End (exclusive) of the name starting at norms[i] given the cue before it, or None."""
    n = len(norms)
    first = _base(norms[i])
    # "will ferrell", "grace kelly": an ambiguous given name is a name when a clear surname follows
    plain_pair = (
        first == norms[i]
        and i + 1 < n
        and lex.is_first(first)
        and _nameish(first, lex)
        and first not in PLACES
        and (lex.is_plain_last(_base(norms[i + 1])) or (cue >= Cue.MEDIUM and _unknown(_base(norms[i + 1]), lex)))
    )
    # "csanad p gere", "faina d yefremova": given name, initial, surname reads as a name without a cue
    with_initial = (
        first == norms[i]
        and i + 2 < n
        and len(norms[i + 1]) == 1
        and norms[i + 1] not in ("a", "i", "s", "o")
        and _nameish(first, lex)
        and (lex.is_first(first) or _unknown(first, lex))
        and (lex.is_plain_last(_base(norms[i + 2])) or _unknown(_base(norms[i + 2]), lex))
    )
    if not (_accepts_first(first, cue, lex) or plain_pair or with_initial):
        return None
    j = i + 1
    if first != norms[i]:  # a possessive ends the name: "jennifer's phone"
        return j
    while j < n and j < i + 3:
        word = _base(norms[j])
        if (
            len(word) == 1
            and word.isalpha()
            and j + 1 < n
            and word not in ("a", "i")
            and _accepts_next(_base(norms[j + 1]), lex)
        ):  # middle initial: "vanessa p hertzog"
            j += 2
        elif _accepts_next(word, lex):
            j += 1
        else:
            break
        if word != norms[j - 1]:
            break
    return j


def _cue_before(norms: list[str], i: int, spans: list[tuple[int, int]], cues: list[Cue]) -> Cue:
    p1 = norms[i - 1] if i >= 1 else ""
    p2 = norms[i - 2] if i >= 2 else ""
    window = norms[max(0, i - 7) : i - 1]
    if (p2, p1) in (("name", "is"), ("names", "is"), ("name", "was")) or p1 in ("name's", "names"):
        return Cue.SELF
    if p1 in CONTACT_VERBS or p1 in RELATIONS:
        return Cue.STRONG
    if p1 in MISHEARD_CONTACT_VERBS and i == 1:  # "cool maria": a recognizer's "call", opening the request
        return Cue.CONTEXT
    if p1 == "from" and any(w in _MESSAGE_NOUNS for w in window):
        return Cue.STRONG
    if p1 == "as" and any(w in ("save", "add", "contact", "store") for w in window):  # "save 555 0123 as ana"
        return Cue.STRONG
    if p1 in ("and", "or", "&", ","):
        # "tell mom and sarah", "call jennifer and david", "a table for me and bettye"
        if spans and spans[-1][1] == i - 1:
            return cues[-1]
        if p2 in RELATIONS or p2 in ("me", "i", "myself"):
            return Cue.STRONG
    if p1 in TITLES or (p2, p1) in (("i", "am"), ("this", "is"), ("call", "me")) or p1 in ("i'm", "im", "name"):
        return Cue.CONTEXT
    if p1 == "to" and any(w in _SEND_VERBS or w in _MESSAGE_NOUNS or w in CONTACT_VERBS for w in window):
        return Cue.CONTEXT
    if p1 == "with" and "share" in window:  # "share this song with caleb"
        return Cue.STRONG
    if p1 == "with" and any(w in _MEETING_NOUNS or w in CONTACT_VERBS for w in window):
        return Cue.CONTEXT
    if p1 == "for" and any(w in _BOOKING for w in window):  # "book a table for dorothy and kayla"
        return Cue.CONTEXT
    if p1 in ("me", "i") and p2 in ("for", "with") and any(w in _BOOKING for w in window):  # "for me helene"
        return Cue.CONTEXT
    if (p2, p1) == ("it", "is") or p1 == "it's" or p1 in GREETINGS or p1 in ("says", "said", "told", "asked"):
        return Cue.MEDIUM
    return Cue.NONE


def _cue_after(norms: list[str], i: int, end: int) -> Cue:
    word = norms[end - 1]
    nxt = norms[end] if end < len(norms) else ""
    if word.endswith("'s") and nxt in _CONTACT_NOUNS:
        return Cue.STRONG
    if word.endswith("'s") and "playlist" in norms[end : end + 8] and norms[i - 1 : i] in (["to"], ["in"], ["onto"]):
        return Cue.CONTEXT  # "add this song to ines's workout playlist": the owner is a user
    if nxt in _AFTER_NAME or (nxt, norms[end + 1] if end + 1 < len(norms) else "") in (("is", "calling"),):
        return Cue.MEDIUM
    return Cue.NONE


def _place_like(norms: list[str], i: int, end: int, cue: Cue) -> bool:
    """ "in austin", "west virginia", "douglas state forest": a place, unless a strong cue says otherwise.

    A lone name after "to"/"with" is a place only when no cue made that preposition a contact cue
    ("drive to austin", but "send a message to austin").
    """
    before = norms[i - 1] if i > 0 else ""
    after = norms[end] if end < len(norms) else ""
    lone = end == i + 1 and before in _PLACE_PREPOSITIONS and cue < Cue.CONTEXT
    return lone or before in _PLACE_BEFORE or after in _PLACE_AFTER


_BOOK_OBJECTS = _words("a an me us my our spot table reservation seat seats room flight ticket tickets appointment")


_QUESTION_STARTS = frozenset(q[0] for q in _PUBLIC_QUESTIONS)


def _is_media_word(norms: list[str], k: int) -> bool:
    w = norms[k]
    if w == "book":  # "book a table for ..." is a booking, "the book by ..." is media
        return not (k + 1 < len(norms) and norms[k + 1] in _BOOK_OBJECTS)
    if w in _MEDIA_WORDS:
        return True
    return w in _QUESTION_STARTS and any(tuple(norms[k : k + len(q)]) == q for q in _PUBLIC_QUESTIONS)


def _media_clauses(norms: list[str]) -> list[bool]:
    """Per token: does its clause ask for media or about a public figure? Clauses break at contact verbs."""
    flags: list[bool] = []
    clause: list[int] = []
    media = False
    for k, w in enumerate(norms):
        if w in _CLAUSE_BREAKS and k > 0:
            flags += [media] * len(clause)
            clause, media = [], False
        clause.append(k)
        media = media or _is_media_word(norms, k)
    flags += [media] * len(clause)
    return flags


def detect_persons(tokens: list[Token]) -> list[tuple[int, int]]:
    """Token ranges [start, end) that name a private person; see the module docstring for the rules."""
    lex = lexicon()
    norms = [t.norm for t in tokens]
    if not norms:
        return []
    media = _media_clauses(norms)
    spans: list[tuple[int, int]] = []
    cues: list[Cue] = []
    i = 0
    n = len(norms)
    while i < n:
        if not tokens[i].is_word:
            i += 1
            continue
        cue = _cue_before(norms, i, spans, cues)
        end = _name_end(norms, i, cue, lex)
        if end is None and cue < Cue.STRONG:
            end = _name_end(norms, i, Cue.STRONG, lex)
            if end is not None and _cue_after(norms, i, end) >= Cue.MEDIUM:
                cue = _cue_after(norms, i, end)
            else:
                end = None
        if end is None:
            i += 1
            continue
        cue = max(cue, _cue_after(norms, i, end))
        if cue < Cue.STRONG and (media[i] or _place_like(norms, i, end, cue)):
            i = end
            continue
        spans.append((i, end))
        cues.append(cue)
        i = end
    return spans
