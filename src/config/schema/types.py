# types.py - typed structs and mustache templates for .aurora files.
#
# The schema files (types.py, aurora.py, convert.py) are executed in that
# order into one namespace, inside the binary (src/config/config.c embeds
# them at build time) or by tests/unit/test_schema.py.
#
# A Struct subclass declares typed fields as class attributes:
#
#     class Profile(Struct):
#         cmd = Required(String)
#         instances = Default(Integer, 1)
#
# Instances are immutable. Calling an instance with keyword arguments
# returns a copy with those fields replaced; .bind() returns a copy with
# extra names in scope. Scalars given as literals are checked when the
# struct is built; strings holding {{refs}} are kept as they are and only
# interpolated, then checked, when the job is converted (interpolation is
# lazy).
#
# Interpolation happens in a chain of scopes, innermost first: for each
# struct from the field's own struct outwards, first its binds (the latest
# bind first), then its own fields. So a process sees its own fields, then
# the task's, then the job's ({{role}}, {{task.name}}). A ref is resolved to
# a value, which is interpolated in the scope it lives in, and the text is
# scanned again until no ref is left, so nested refs ({{a{{b}}}}) work.
# The runtime refs {{thermos.ports[X]}}, {{thermos.task_id}},
# {{thermos.user}}, {{mesos.instance}} and {{mesos.hostname}} are left for
# the executor. Any other ref that nothing binds is an error.

import json
import re
import sys


class ConfigError(Exception):
    """A schema or validation error. `path` is the field path inside the
    job ('task.resources.ram'); `loc` is (file, line) when known."""

    def __init__(self, msg, path=None, loc=None):
        super().__init__(msg)
        self.msg = msg
        self.path = path
        self.loc = loc

    def __str__(self):
        return '%s: %s' % (self.path, self.msg) if self.path else self.msg


# Filenames of the user's code: the evaluated file and its includes. A
# struct remembers the innermost user frame that built it, for messages.
_USER_FILES = set()


def _user_loc():
    f = sys._getframe(2)
    while f is not None:
        name = f.f_code.co_filename
        if name in _USER_FILES:
            return (name, f.f_lineno)
        f = f.f_back
    return None


def _join(path, name):
    if not path:
        return name
    if name.startswith('['):
        return path + name
    return path + '.' + name


def _show(v):
    if isinstance(v, Struct):
        return type(v).__name__ + '(...)'
    r = repr(v)
    return r if len(r) <= 60 else r[:57] + '...'


def _mismatch(t, v, path):
    return ConfigError('expected %s, got %s' % (t.describe(), _show(v)), path)


def _has_ref(s):
    return '{{' in s


_UNSET = object()


# ---- types ----------------------------------------------------------------

class Type(object):
    """A field type: coerce() checks a value given in the file (templates
    pass), interp() turns a stored value into plain JSON data."""
    name = 'Type'

    def describe(self):
        return self.name

    def __repr__(self):
        return self.name

    def coerce(self, v, path):
        raise NotImplementedError

    def interp(self, v, ctx, path):
        raise NotImplementedError

    def __call__(self, v):
        return self.coerce(v, self.name)


class _ScalarType(Type):
    def final(self, v, path):
        return self.coerce(v, path)

    def interp(self, v, ctx, path):
        if isinstance(v, str):
            s = interp_str(v, ctx, path)
            r = self.final(s, path)
            if isinstance(r, str) and _has_ref(r) and not isinstance(self, _StringType):
                raise _mismatch(self, s, path)
            return r
        return v


class _StringType(_ScalarType):
    name = 'String'

    def describe(self):
        return 'a string'

    def coerce(self, v, path):
        if isinstance(v, str):
            return str(v)
        if isinstance(v, bool):
            return 'true' if v else 'false'
        if isinstance(v, (int, float)):
            return str(v)
        raise _mismatch(self, v, path)


class _IntegerType(_ScalarType):
    name = 'Integer'

    def describe(self):
        return 'an integer'

    def coerce(self, v, path):
        if isinstance(v, bool):
            raise _mismatch(self, v, path)
        if isinstance(v, int):
            return int(v)
        if isinstance(v, float) and v.is_integer():
            return int(v)
        if isinstance(v, str):
            if _has_ref(v):
                return str(v)
            try:
                return int(v.strip(), 10)
            except ValueError:
                pass
        raise _mismatch(self, v, path)


class _FloatType(_ScalarType):
    name = 'Float'

    def describe(self):
        return 'a number'

    def coerce(self, v, path):
        if isinstance(v, bool):
            raise _mismatch(self, v, path)
        if isinstance(v, (int, float)):
            return float(v)
        if isinstance(v, str):
            if _has_ref(v):
                return str(v)
            try:
                return float(v.strip())
            except ValueError:
                pass
        raise _mismatch(self, v, path)


class _BooleanType(_ScalarType):
    name = 'Boolean'

    def describe(self):
        return 'a boolean'

    def coerce(self, v, path):
        if isinstance(v, bool):
            return v
        if isinstance(v, int) and v in (0, 1):
            return bool(v)
        if isinstance(v, str):
            if _has_ref(v):
                return str(v)
            s = v.strip().lower()
            if s in ('true', '1'):
                return True
            if s in ('false', '0'):
                return False
        raise _mismatch(self, v, path)


String = _StringType()
Integer = _IntegerType()
Float = _FloatType()
Boolean = _BooleanType()


class Enum(_ScalarType):
    """Enum('a', 'b'), Enum(('a', 'b')) or Enum('Name', ('a', 'b'))."""

    def __init__(self, *args):
        if len(args) == 2 and isinstance(args[1], (list, tuple)):
            self.name, values = args[0], args[1]
        elif len(args) == 1 and isinstance(args[0], (list, tuple)):
            self.name, values = 'Enum', args[0]
        else:
            self.name, values = 'Enum', args
        self.values = tuple(str(x) for x in values)
        if not self.values:
            raise ConfigError('Enum: no values given')

    def describe(self):
        return 'one of ' + ', '.join(repr(x) for x in self.values)

    def coerce(self, v, path):
        if isinstance(v, str) and (v in self.values or _has_ref(v)):
            return str(v)
        raise _mismatch(self, v, path)


def _as_type(t, what):
    if isinstance(t, Type):
        return t
    if isinstance(t, type) and issubclass(t, Struct):
        return t._TYPE
    raise ConfigError('%s: not a type: %s' % (what, _show(t)))


class _ListType(Type):
    def __init__(self, elem):
        self.elem = _as_type(elem, 'List')
        self.name = 'List(%s)' % self.elem.name

    def describe(self):
        return 'a list of %s' % self.elem.name

    def coerce(self, v, path):
        if not isinstance(v, (list, tuple)):
            raise _mismatch(self, v, path)
        return [self.elem.coerce(e, '%s[%d]' % (path, i)) for i, e in enumerate(v)]

    def interp(self, v, ctx, path):
        return [self.elem.interp(e, ctx, '%s[%d]' % (path, i)) for i, e in enumerate(v)]


class _MapType(Type):
    def __init__(self, key, value):
        self.key = _as_type(key, 'Map')
        self.value = _as_type(value, 'Map')
        self.name = 'Map(%s, %s)' % (self.key.name, self.value.name)

    def describe(self):
        return 'a map of %s to %s' % (self.key.name, self.value.name)

    def coerce(self, v, path):
        if not isinstance(v, dict):
            raise _mismatch(self, v, path)
        return {self.key.coerce(k, path): self.value.coerce(x, '%s[%s]' % (path, k))
                for k, x in v.items()}

    def interp(self, v, ctx, path):
        out = {}
        for k, x in v.items():
            ki = self.key.interp(k, ctx, path)
            out[_to_text(ki)] = self.value.interp(x, ctx, '%s[%s]' % (path, ki))
        return out


def List(elem):
    return _ListType(elem)


def Map(key, value):
    return _MapType(key, value)


class _ChoiceType(Type):
    def __init__(self, alts):
        self.alts = [_as_type(a, 'Choice') for a in alts]
        self.name = 'Choice(%s)' % ', '.join(a.name for a in self.alts)

    def describe(self):
        return 'one of ' + ', '.join(a.name for a in self.alts)

    def _pick(self, v, path):
        """The alternative for `v`: one it naturally is (a struct of that
        class, a Python value of that kind), else the first that takes it."""
        for a in self.alts:
            if isinstance(a, _StructType):
                if isinstance(v, a.cls):
                    return a, v
            elif _natural(a, v):
                return a, a.coerce(v, path)
        for a in self.alts:
            if isinstance(v, Struct) and isinstance(a, _StructType):
                continue
            try:
                return a, a.coerce(v, path)
            except ConfigError:
                pass
        raise _mismatch(self, v, path)

    def coerce(self, v, path):
        return self._pick(v, path)[1]

    def interp(self, v, ctx, path):
        if isinstance(v, str) and _has_ref(v):
            v = interp_str(v, ctx, path)
        a, v = self._pick(v, path)
        return a.interp(v, ctx, path)


def _natural(t, v):
    if isinstance(t, _StringType):
        return isinstance(v, str)
    if isinstance(t, Enum):
        return isinstance(v, str) and v in t.values
    if isinstance(t, _BooleanType):
        return isinstance(v, bool)
    if isinstance(t, _IntegerType):
        return isinstance(v, int) and not isinstance(v, bool)
    if isinstance(t, _FloatType):
        return isinstance(v, float)
    if isinstance(t, _ListType):
        return isinstance(v, (list, tuple))
    if isinstance(t, _MapType):
        return isinstance(v, dict)
    return False


def Choice(alts):
    return _ChoiceType(alts)


class _StructType(Type):
    def __init__(self, cls):
        self.cls = cls
        self.name = cls.__name__

    def coerce(self, v, path):
        if isinstance(v, self.cls):
            return v
        if isinstance(v, dict):
            try:
                return self.cls(**{str(k): x for k, x in v.items()})
            except ConfigError as e:
                raise ConfigError(e.msg, _join(path, e.path) if e.path else path)
        raise _mismatch(self, v, path)

    def interp(self, v, ctx, path):
        return _struct_interp(v, ctx, path)


class Default(object):
    """Default(type, value): a field with a default."""

    def __init__(self, t, value):
        self.type = _as_type(t, 'Default')
        self.value = self.type.coerce(value, 'Default')


class Required(object):
    """Required(type): a field that must be set."""

    def __init__(self, t):
        self.type = _as_type(t, 'Required')


class _Field(object):
    __slots__ = ('type', 'required', 'default')

    def __init__(self, t, required, default):
        self.type = t
        self.required = required
        self.default = default


def _field_spec(v):
    if isinstance(v, Default):
        return _Field(v.type, False, v.value)
    if isinstance(v, Required):
        return _Field(v.type, True, _UNSET)
    if isinstance(v, Type):
        return _Field(v, False, _UNSET)
    if isinstance(v, type) and issubclass(v, Struct) and v is not Struct:
        return _Field(v._TYPE, False, _UNSET)
    return None


# ---- structs ----------------------------------------------------------------

class _StructMeta(type):
    def __new__(mcs, name, bases, ns):
        fields = {}
        for b in reversed(bases):
            fields.update(getattr(b, '_FIELDS', {}))
        for k in list(ns):
            if k.startswith('__'):
                continue
            f = _field_spec(ns[k])
            if f is not None:
                fields[k] = f
                del ns[k]
        ns['_FIELDS'] = fields
        ns.setdefault('__slots__', ())
        cls = super().__new__(mcs, name, bases, ns)
        cls._TYPE = _StructType(cls)
        return cls


class _Value(object):
    """Field values as seen from Python code: `p.name()` returns the stored
    value, with .get() for pystachio compatibility."""


class _Str(str, _Value):
    def get(self):
        return str(self)


class _Int(int, _Value):
    def get(self):
        return int(self)


class _Float(float, _Value):
    def get(self):
        return float(self)


def _wrap(v):
    if isinstance(v, bool) or v is None:
        return v
    if isinstance(v, str):
        return _Str(v)
    if isinstance(v, int):
        return _Int(v)
    if isinstance(v, float):
        return _Float(v)
    if isinstance(v, list):
        return list(v)
    if isinstance(v, dict):
        return dict(v)
    return v


class Struct(object, metaclass=_StructMeta):
    __slots__ = ('_values', '_binds', '_loc')

    def __init__(self, *args, **kw):
        cls = type(self)
        given = {}
        for a in args:
            if isinstance(a, dict):
                given.update(a)
            elif isinstance(a, cls):
                given.update(a._values)
            else:
                raise ConfigError('%s: unexpected positional argument %s (use field=value)'
                                  % (cls.__name__, _show(a)))
        given.update(kw)
        values = {}
        for k, v in given.items():
            f = cls._FIELDS.get(k)
            if f is None:
                raise ConfigError('%s: unknown field \'%s\'' % (cls.__name__, k))
            if v is None:
                continue
            values[k] = f.type.coerce(v, '%s.%s' % (cls.__name__, k))
        object.__setattr__(self, '_values', values)
        object.__setattr__(self, '_binds', ())
        object.__setattr__(self, '_loc', _user_loc())

    def _copy(self, values, binds):
        new = object.__new__(type(self))
        object.__setattr__(new, '_values', values)
        object.__setattr__(new, '_binds', binds)
        object.__setattr__(new, '_loc', _user_loc() or self._loc)
        return new

    def __call__(self, **kw):
        cls = type(self)
        values = dict(self._values)
        for k, v in kw.items():
            f = cls._FIELDS.get(k)
            if f is None:
                raise ConfigError('%s: unknown field \'%s\'' % (cls.__name__, k))
            if v is None:
                values.pop(k, None)
            else:
                values[k] = f.type.coerce(v, '%s.%s' % (cls.__name__, k))
        return self._copy(values, self._binds)

    def bind(self, *args, **kw):
        """bind(name=value, ...), bind({'a.b': value}), bind(struct): names
        for the templates of this struct and everything inside it."""
        binds = list(self._binds)
        for a in args:
            if isinstance(a, Struct):
                binds.append(a)
            elif isinstance(a, dict):
                binds.append({str(k): v for k, v in a.items()})
            else:
                raise ConfigError('bind: expected a Struct, a dict or name=value, got %s'
                                  % _show(a))
        if kw:
            binds.append(dict(kw))
        return self._copy(dict(self._values), tuple(binds))

    def __setattr__(self, k, v):
        raise ConfigError('%s is immutable: use %s(%s=...) to get a modified copy'
                          % (type(self).__name__, type(self).__name__, k))

    def _get(self, k):
        v = self._values.get(k, _UNSET)
        if v is _UNSET:
            v = type(self)._FIELDS[k].default
        return v

    def __getattr__(self, k):
        fields = type(self)._FIELDS
        if k in fields:
            v = self._get(k)
            return lambda: _wrap(None if v is _UNSET else v)
        if k.startswith('has_') and k[4:] in fields:
            name = k[4:]
            return lambda: self._get(name) is not _UNSET
        raise AttributeError('%s has no field \'%s\'' % (type(self).__name__, k))

    def __repr__(self):
        return '%s(%s)' % (type(self).__name__,
                           ', '.join('%s=%r' % kv for kv in self._values.items()))

    def json_dumps(self):
        return json.dumps(_struct_interp(self, None, ''), sort_keys=True)


# ---- interpolation ------------------------------------------------------------

class _Ctx(object):
    """One struct in the scope chain, with the chain outside it."""
    __slots__ = ('struct', 'parent')

    def __init__(self, struct, parent):
        self.struct = struct
        self.parent = parent


def _struct_interp(s, parent, path):
    cls = type(s)
    ctx = _Ctx(s, parent)
    out = {}
    for name, f in cls._FIELDS.items():
        v = s._get(name)
        fp = _join(path, name)
        if v is _UNSET:
            if f.required:
                raise ConfigError('required field not set', fp, s._loc)
            continue
        try:
            out[name] = f.type.interp(v, ctx, fp)
        except ConfigError as e:
            if e.loc is None:
                e.loc = s._loc
            if e.path is None:
                e.path = fp
            raise
    return out


_REF = re.compile(r'\{\{([^{}]*)\}\}')
_REF_NAME = re.compile(r'\s*([A-Za-z_][\w-]*)')
_REF_PART = re.compile(r'\.([\w-]+)|\[\s*([^\[\]]*?)\s*\]')
_HOLD = re.compile('\x00(\\d+)\x00')


def _parse_ref(text):
    """'a.b[c][0]' -> ['a', ('.', 'b'), ('[', 'c'), ('[', '0')], or None."""
    m = _REF_NAME.match(text)
    if not m:
        return None
    parts = [m.group(1)]
    pos = m.end()
    end = len(text.rstrip())
    while pos < end:
        m = _REF_PART.match(text, pos)
        if not m:
            return None
        if m.group(1) is not None:
            parts.append(('.', m.group(1)))
        else:
            key = m.group(2)
            if len(key) >= 2 and key[0] == key[-1] and key[0] in '\'"':
                key = key[1:-1]
            parts.append(('[', key))
        pos = m.end()
    return parts


def _is_runtime(parts):
    head, rest = parts[0], parts[1:]
    if head == 'thermos':
        if len(rest) == 2 and rest[0] == ('.', 'ports') and rest[1][0] == '[':
            return True
        return len(rest) == 1 and rest[0] in (('.', 'task_id'), ('.', 'user'))
    if head == 'mesos':
        return len(rest) == 1 and rest[0] in (('.', 'instance'), ('.', 'hostname'))
    return False


def _to_text(v):
    if isinstance(v, bool):
        return 'true' if v else 'false'
    if isinstance(v, str):
        return str(v)
    if isinstance(v, (int, float)):
        return str(v)
    return json.dumps(v, sort_keys=True)


def interp_str(s, ctx, path):
    """Interpolate every {{ref}} of `s` in the scope chain `ctx`."""
    if '{{' not in s:
        return s
    held = []

    def sub(m):
        text = m.group(1)
        parts = _parse_ref(text)
        if parts is None or _is_runtime(parts):
            held.append(m.group(0))
            return '\x00%d\x00' % (len(held) - 1)
        return _to_text(_resolve(parts, text.strip(), ctx, path))

    for _ in range(100):
        new = _REF.sub(sub, s)
        if new == s:
            break
        s = new
    else:
        raise ConfigError('templates nested too deeply', path)
    if held:
        s = _HOLD.sub(lambda m: held[int(m.group(1))], s)
    return s


_ACTIVE = set()


def _lookup(head, text, ctx):
    """(value, type or None, ctx the value lives in, whether the whole ref
    matched a dotted bind like {'profile.x': 1}) for the first name of a
    ref, or None."""
    c = ctx
    while c is not None:
        s = c.struct
        for b in reversed(s._binds):
            if isinstance(b, dict):
                if text in b:
                    return b[text], None, c, True
                if head in b:
                    return b[head], None, c, False
            elif head in type(b)._FIELDS:
                v = b._get(head)
                if v is not _UNSET:
                    return v, type(b)._FIELDS[head].type, _Ctx(b, c), False
        f = type(s)._FIELDS.get(head)
        if f is not None:
            v = s._get(head)
            if v is not _UNSET:
                return v, f.type, c, False
        c = c.parent
    return None


def _resolve(parts, text, ctx, path):
    ref = '{{%s}}' % text
    found = _lookup(parts[0], text, ctx)
    if found is None:
        raise ConfigError('unbound reference \'%s\'' % ref, path)
    v, t, owner, whole = found
    if whole:
        parts = parts[:1]
    for kind, key in parts[1:]:
        if isinstance(v, Struct):
            f = type(v)._FIELDS.get(key)
            sub = v._get(key) if f is not None else _UNSET
            if sub is _UNSET:
                raise ConfigError('unbound reference \'%s\': %s has no %s \'%s\''
                                  % (ref, type(v).__name__,
                                     'field' if f is None else 'value for', key), path)
            owner, t, v = _Ctx(v, owner), f.type, sub
        elif isinstance(v, (list, tuple)):
            try:
                v = v[int(key)]
            except (ValueError, IndexError):
                raise ConfigError('unbound reference \'%s\': no element [%s] in a list of %d'
                                  % (ref, key, len(v)), path)
            t = t.elem if isinstance(t, _ListType) else None
        elif isinstance(v, dict):
            k = key
            if k not in v and isinstance(t, _MapType):
                try:
                    k = t.key.coerce(key, path)
                except ConfigError:
                    pass
            if k not in v:
                raise ConfigError('unbound reference \'%s\': no key \'%s\'' % (ref, key), path)
            v = v[k]
            t = t.value if isinstance(t, _MapType) else None
        else:
            raise ConfigError('unbound reference \'%s\': cannot look up \'%s\' in %s'
                              % (ref, key, _show(v)), path)
    key = (id(owner.struct), id(v))
    if key in _ACTIVE:
        raise ConfigError('reference cycle through \'%s\'' % ref, path)
    _ACTIVE.add(key)
    try:
        if t is not None:
            return t.interp(v, owner, path)
        return _interp_any(v, owner, path)
    finally:
        _ACTIVE.discard(key)


def _interp_any(v, ctx, path):
    if isinstance(v, Struct):
        return _struct_interp(v, ctx, path)
    if isinstance(v, bool) or isinstance(v, (int, float)):
        return v
    if isinstance(v, str):
        return interp_str(v, ctx, path)
    if isinstance(v, (list, tuple)):
        return [_interp_any(x, ctx, path) for x in v]
    if isinstance(v, dict):
        return {_to_text(k): _interp_any(x, ctx, path) for k, x in v.items()}
    raise ConfigError('cannot use %s in a template' % _show(v), path)
