"""A MySQL lexer and token scanners that find table names in DDL that sqlglot cannot parse.

`consumers.ddl` parses with sqlglot first. Some statements sqlglot leaves as an unparsed
`Command` (`RENAME TABLE`, `ALTER DATABASE`, `ALTER TABLE ... CONVERT TO`, partition
maintenance) or rejects (`ALTER TABLE t ADD INDEX IF NOT EXISTS ...`). For those, the table
names sit in a few fixed places of the grammar, and a scanner walks the tokens to them:

    ALTER [ONLINE] [IGNORE] TABLE [IF EXISTS] name ... RENAME [TO|AS] name
                                              ... REFERENCES name ... WITH TABLE name
    CREATE [OR REPLACE] TABLE [IF NOT EXISTS] name [(] LIKE name ... REFERENCES name
    CREATE ... INDEX ... ON name          DROP ... INDEX ... ON name
    DROP TABLE[S]|VIEW [IF EXISTS] name [, name ...]
    RENAME TABLE[S] [IF EXISTS] name TO name [, name TO name ...]
    ALTER DATABASE|SCHEMA [name] options

The lexer skips comments and quoted text, so a name inside a string or a comment is never
taken for a table. MySQL's executable comments (`/*!50100 ... */`, MariaDB's `/*M!...*/`) are
code to the server that executed them, so the lexer reads their content as code.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

_LEXEME = re.compile(r"""
    (?P<space>\s+)
  | (?P<line>(?:--(?=\s|$)|\#)[^\n]*)
  | (?P<open>/\*M?!\d*)
  | (?P<block>/\*.*?\*/)
  | (?P<close>\*/)
  | (?P<quoted>`(?:[^`]|``)*`)
  | (?P<string>'(?:[^'\\]|\\.|'')*'|"(?:[^"\\]|\\.|"")*")
  | (?P<word>[\w$]+)
  | (?P<punct>.)
""", re.VERBOSE | re.DOTALL)

_UNTERMINATED = frozenset("'\"`")

# MySQL reserved words that DDL grammar puts next to names: unquoted, they are never a name.
RESERVED = frozenset({
    "ADD", "ALTER", "AS", "BY", "CHANGE", "CHECK", "COLUMN", "CONSTRAINT", "CREATE", "DATABASE",
    "DEFAULT", "DELETE", "DROP", "EXISTS", "FOREIGN", "FROM", "FULLTEXT", "IF", "IGNORE", "IN",
    "INDEX", "INSERT", "INTO", "KEY", "KEYS", "LIKE", "LOCK", "NOT", "NULL", "ON", "OR",
    "PARTITION", "PRIMARY", "REFERENCES", "RENAME", "REPLACE", "SCHEMA", "SELECT", "SET",
    "SPATIAL", "TABLE", "TO", "UNIQUE", "UPDATE", "USING", "WHERE", "WITH"})


class ScanError(ValueError):
    """The tokens do not follow the grammar a scanner expects."""


@dataclass(frozen=True)
class Token:
    """One lexeme: kind is word, quoted (a backquoted identifier), string or punct."""

    kind: str
    text: str
    start: int
    end: int

    @property
    def upper(self) -> str:
        """The upper-cased text of a word, the text of punctuation, "" otherwise."""
        if self.kind == "word":
            return self.text.upper()
        return self.text if self.kind == "punct" else ""

    @property
    def is_name(self) -> bool:
        """Whether the token can be (part of) an identifier: quoted, or an unreserved word."""
        return self.kind == "quoted" or (self.kind == "word" and self.upper not in RESERVED)

    @property
    def value(self) -> str:
        """The identifier a word or backquoted token spells."""
        if self.kind == "quoted":
            return self.text[1:-1].replace("``", "`")
        return self.text


@dataclass(frozen=True)
class Name:
    """A possibly qualified object name found in a statement.

    `start`/`end` delimit its text (end exclusive); an empty span marks where an omitted name
    belongs (`ALTER DATABASE CHARACTER SET ...`). `role` says why it is there: target, new
    (RENAME target), like, reference, exchange, query, database. `bare` marks a table inside a
    view's query that has no alias, so renaming it must keep the old name as the alias.
    """

    start: int
    end: int
    parts: tuple[str, ...]
    role: str = "target"
    bare: bool = False


@dataclass(frozen=True)
class Lexed:
    """A statement's tokens, and its text with executable-comment markers blanked out."""

    tokens: tuple[Token, ...]
    code: str


def lex(text: str) -> Lexed:
    """Split `text` into tokens; blank `/*!...` and its `*/` so sqlglot sees the code inside."""
    tokens: list[Token] = []
    code = list(text)
    executable = False
    for match in _LEXEME.finditer(text):
        kind, start, end = match.lastgroup or "", match.start(), match.end()
        if kind == "open" or (kind == "close" and executable):
            executable = kind == "open"
            code[start:end] = " " * (end - start)
        elif kind in ("word", "quoted", "string", "punct", "close"):
            if kind == "punct" and match.group() in _UNTERMINATED:
                raise ScanError(f"unterminated quote at offset {start}")
            tokens.append(Token("punct" if kind == "close" else kind, match.group(), start, end))
    return Lexed(tuple(tokens), "".join(code))


class Cursor:
    """A position in a token list, with the few moves the scanners need."""

    def __init__(self, tokens: Sequence[Token]) -> None:
        self.tokens = tokens
        self.index = 0
        self.depth = 0

    def peek(self, ahead: int = 0) -> str:
        """The upper text of the token `ahead` positions on, "" past the end."""
        at = self.index + ahead
        return self.tokens[at].upper if at < len(self.tokens) else ""

    def done(self) -> bool:
        """Whether every token has been consumed."""
        return self.index >= len(self.tokens)

    def accept(self, *words: str) -> bool:
        """Consume `words` if the next tokens are exactly they."""
        if all(self.peek(i) == word for i, word in enumerate(words)):
            self.index += len(words)
            return True
        return False

    def expect(self, *words: str) -> None:
        """Consume `words` or fail."""
        if not self.accept(*words):
            raise ScanError(f"expected {' '.join(words)} at {self.where()}")

    def advance(self) -> None:
        """Consume one token, tracking parenthesis depth."""
        self.depth += {"(": 1, ")": -1}.get(self.peek(), 0)
        self.index += 1

    def skip_to(self, word: str) -> None:
        """Consume tokens up to and including `word` at the current depth, or fail."""
        depth = self.depth
        while not self.done():
            if self.depth == depth and self.accept(word):
                return
            self.advance()
        raise ScanError(f"expected {word}")

    def name(self, role: str = "target") -> Name:
        """Consume a name of one or two dotted parts."""
        parts = [self._part()]
        while self.peek() == "." and self._is_name(1):
            self.index += 1
            parts.append(self._part())
        if len(parts) > 2:
            raise ScanError(f"too many qualifiers in {'.'.join(parts)}")
        first, last = self.tokens[self.index - 2 * len(parts) + 1], self.tokens[self.index - 1]
        return Name(first.start, last.end, tuple(parts), role)

    def _is_name(self, ahead: int = 0) -> bool:
        at = self.index + ahead
        return at < len(self.tokens) and self.tokens[at].is_name

    def _part(self) -> str:
        if not self._is_name():
            raise ScanError(f"expected a name at {self.where()}")
        self.index += 1
        return self.tokens[self.index - 1].value

    def where(self) -> str:
        """The current token and its offset, for error messages."""
        if self.done():
            return "the end"
        return f"`{self.tokens[self.index].text}` (offset {self.tokens[self.index].start})"


def _modifiers(cursor: Cursor, *words: str) -> None:
    while any(cursor.accept(word) for word in words):
        pass


def scan_alter_table(tokens: Sequence[Token]) -> list[Name]:
    """The altered table, then any RENAME target, REFERENCES target or EXCHANGE partner."""
    cursor = Cursor(tokens)
    cursor.expect("ALTER")
    _modifiers(cursor, "ONLINE", "IGNORE")
    cursor.expect("TABLE")
    cursor.accept("IF", "EXISTS")
    names = [cursor.name()]
    while not cursor.done():
        names.extend(_alter_clause(cursor))
    return names


def _alter_clause(cursor: Cursor) -> list[Name]:
    if cursor.depth == 0 and cursor.accept("RENAME"):
        if cursor.peek() in ("COLUMN", "INDEX", "KEY"):
            return []
        _modifiers(cursor, "TO", "AS")
        return [cursor.name("new")]
    if cursor.accept("REFERENCES"):
        return [cursor.name("reference")]
    if cursor.depth == 0 and cursor.accept("WITH", "TABLE"):
        return [cursor.name("exchange")]
    cursor.advance()
    return []


def scan_create_table(tokens: Sequence[Token]) -> list[Name]:
    """The created table, then a LIKE source and REFERENCES targets."""
    cursor = Cursor(tokens)
    cursor.expect("CREATE")
    _modifiers(cursor, "OR", "REPLACE")
    cursor.expect("TABLE")
    cursor.accept("IF", "NOT", "EXISTS")
    names = [cursor.name()]
    if cursor.accept("LIKE") or cursor.accept("(", "LIKE"):
        names.append(cursor.name("like"))
    while not cursor.done():
        if cursor.accept("REFERENCES"):
            names.append(cursor.name("reference"))
        else:
            cursor.advance()
    return names


def scan_drop(tokens: Sequence[Token]) -> list[Name]:
    """Each name of `DROP TABLE[S]|VIEW [IF EXISTS] a, b ... [RESTRICT|CASCADE]`."""
    cursor = Cursor(tokens)
    cursor.expect("DROP")
    if not any(cursor.accept(noun) for noun in ("TABLE", "TABLES", "VIEW")):
        raise ScanError(f"expected TABLE or VIEW at {cursor.where()}")
    cursor.accept("IF", "EXISTS")
    names = [cursor.name()]
    while cursor.accept(","):
        names.append(cursor.name())
    _modifiers(cursor, "RESTRICT", "CASCADE")
    if not cursor.done():
        raise ScanError(f"unexpected text after the last name at {cursor.where()}")
    return names


def scan_index(tokens: Sequence[Token]) -> list[Name]:
    """The table of `CREATE ... INDEX i ... ON t` or `DROP INDEX i ON t`."""
    cursor = Cursor(tokens)
    cursor.skip_to("INDEX")
    cursor.skip_to("ON")
    return [cursor.name()]


def scan_rename_table(tokens: Sequence[Token]) -> list[Name]:
    """Each `old TO new` pair of a RENAME TABLE, in order."""
    cursor = Cursor(tokens)
    cursor.expect("RENAME")
    if not (cursor.accept("TABLE") or cursor.accept("TABLES")):
        raise ScanError("expected TABLE after RENAME")
    cursor.accept("IF", "EXISTS")
    names = [*_rename_pair(cursor)]
    while cursor.accept(","):
        names.extend(_rename_pair(cursor))
    if not cursor.done():
        raise ScanError(f"unexpected text after the last rename at {cursor.where()}")
    return names


def _rename_pair(cursor: Cursor) -> tuple[Name, Name]:
    old = cursor.name()
    if cursor.accept("WAIT"):
        cursor.advance()
    cursor.accept("NOWAIT")
    cursor.expect("TO")
    return old, cursor.name("new")


_DATABASE_OPTIONS = frozenset({
    "CHARACTER", "CHARSET", "COLLATE", "DEFAULT", "ENCRYPTION", "READ", "COMMENT", "UPGRADE"})


def scan_database(tokens: Sequence[Token]) -> list[Name]:
    """The database of CREATE/ALTER/DROP DATABASE; an empty span where ALTER omits it."""
    cursor = Cursor(tokens)
    verb = cursor.peek()
    cursor.advance()
    _modifiers(cursor, "OR", "REPLACE")
    if not (cursor.accept("DATABASE") or cursor.accept("SCHEMA")):
        raise ScanError(f"expected DATABASE or SCHEMA at {cursor.where()}")
    if not cursor.accept("IF", "NOT", "EXISTS"):
        cursor.accept("IF", "EXISTS")
    if verb == "ALTER" and (cursor.done() or cursor.peek() in _DATABASE_OPTIONS):
        offset = tokens[-1].end if cursor.done() else tokens[cursor.index].start
        return [Name(offset, offset, (), "database")]
    name = cursor.name("database")
    if len(name.parts) != 1:
        raise ScanError(f"a database name has no qualifier: {'.'.join(name.parts)}")
    return [name]
