"""test_schema.py SCHEMA.py... - the config schema's Python alone (the C side
is tests/unit/test_config.c): types and coercion, struct copies and binds,
template resolution and scoping, task helpers. The schema files are given
in execution order, as meson passes them."""

import sys
import unittest

FILES = sys.argv[1:]
S = {'__name__': '_borealis_config'}
for _path in FILES:
    with open(_path) as _f:
        exec(compile(_f.read(), '<borealis>/schema/' + _path.rsplit('/', 1)[-1], 'exec'), S)

ConfigError = S['ConfigError']
Struct, Default, Required = S['Struct'], S['Default'], S['Required']
String, Integer, Float, Boolean = S['String'], S['Integer'], S['Float'], S['Boolean']
List, Map, Choice, Enum = S['List'], S['Map'], S['Choice'], S['Enum']
Process, Task, Resources, Job = S['Process'], S['Task'], S['Resources'], S['Job']
MB, GB = S['MB'], S['GB']


def interp(struct):
    return S['_struct_interp'](struct, None, '')


def task(*procs, **kw):
    return Task(processes=list(procs) or [Process(name='p', cmdline='x')],
                resources=Resources(cpu=1, ram=MB, disk=MB), **kw)


class Types(unittest.TestCase):
    def test_scalars(self):
        self.assertEqual(Integer('12'), 12)
        self.assertEqual(Integer(3.0), 3)
        self.assertEqual(Float('0.5'), 0.5)
        self.assertEqual(Boolean('true'), True)
        self.assertEqual(String(5), '5')
        for t, v in ((Integer, 'x'), (Integer, 1.5), (Integer, True), (Float, 'y'),
                     (Boolean, 'maybe'), (String, [1])):
            with self.assertRaises(ConfigError):
                t(v)

    def test_templates_pass_coercion(self):
        self.assertEqual(Integer('{{n}}'), '{{n}}')

    def test_enum(self):
        e = Enum('a', 'b')
        self.assertEqual(e('a'), 'a')
        with self.assertRaises(ConfigError):
            e('c')
        self.assertEqual(Enum('Named', ('x', 'y'))('y'), 'y')

    def test_choice_prefers_the_natural_type(self):
        c = Choice([String, Integer])
        self.assertEqual(c(8080), 8080)
        self.assertEqual(c('http'), 'http')

    def test_list_and_map(self):
        class S1(Struct):
            xs = List(Integer)
            m = Map(String, Integer)
        s = S1(xs=['1', 2], m={'a': '3'})
        self.assertEqual(interp(s), {'xs': [1, 2], 'm': {'a': 3}})
        with self.assertRaises(ConfigError) as e:
            S1(xs=['one'])
        self.assertEqual(str(e.exception), "S1.xs[0]: expected an integer, got 'one'")


class Structs(unittest.TestCase):
    def test_defaults_required_copy(self):
        class P(Struct):
            a = Required(String)
            b = Default(Integer, 7)
            c = String
        p = P(a='x')
        self.assertEqual(interp(p), {'a': 'x', 'b': 7})
        q = p(b=8, c='z')
        self.assertEqual(interp(q), {'a': 'x', 'b': 8, 'c': 'z'})
        self.assertEqual(interp(p), {'a': 'x', 'b': 7})
        self.assertEqual(p.b(), 7)
        self.assertEqual(p.a().get(), 'x')
        self.assertTrue(p.has_a())
        self.assertFalse(p.has_c())
        with self.assertRaises(ConfigError) as e:
            interp(P())
        self.assertEqual(str(e.exception), 'a: required field not set')
        with self.assertRaises(ConfigError):
            p.a = 'y'
        with self.assertRaises(ConfigError):
            P(d=1)

    def test_inheritance(self):
        class A(Struct):
            x = Default(Integer, 1)

        class B(A):
            y = Default(Integer, 2)
        self.assertEqual(interp(B()), {'x': 1, 'y': 2})


class Templates(unittest.TestCase):
    def test_self_and_nested(self):
        p = Process(name='web', cmdline='echo {{name}} {{a{{b}}}}').bind(b='1', a1='ok')
        self.assertEqual(interp(p)['cmdline'], 'echo web ok')

    def test_scoping(self):
        j = Job(role='r', cluster='c', environment='e',
                task=task(Process(name='p', cmdline='{{role}} {{task.name}} {{name}}')))
        d = interp(j)
        self.assertEqual(d['task']['processes'][0]['cmdline'], 'r p p')
        self.assertEqual(d['name'], 'p')

    def test_latest_bind_wins_and_dotted_binds(self):
        class Prof(Struct):
            n = Default(Integer, 1)
        p = Process(name='p', cmdline='{{x}} {{prof.n}}').bind(x='1', prof=Prof()).bind(x='2')
        self.assertEqual(interp(p)['cmdline'], '2 1')
        p = p.bind({'prof.n': 5})
        self.assertEqual(interp(p)['cmdline'], '2 5')

    def test_runtime_refs_are_kept(self):
        s = '{{thermos.ports[http]}} {{mesos.instance}} {{thermos.task_id}}'
        self.assertEqual(interp(Process(name='p', cmdline=s))['cmdline'], s)

    def test_unbound_and_cycles(self):
        with self.assertRaises(ConfigError) as e:
            interp(Process(name='p', cmdline='{{mesos.role}}'))
        self.assertIn("unbound reference '{{mesos.role}}'", str(e.exception))
        with self.assertRaises(ConfigError) as e:
            interp(Process(name='{{cmdline}}', cmdline='{{name}}'))
        self.assertIn('cycle', str(e.exception))

    def test_not_a_ref_is_left_alone(self):
        s = "docker inspect --format '{{.State.Pid}}' x"
        self.assertEqual(interp(Process(name='p', cmdline=s))['cmdline'], s)

    def test_typed_after_interpolation(self):
        p = Process(name='p', cmdline='x', max_failures='{{n}}').bind(n='4')
        self.assertEqual(interp(p)['max_failures'], 4)
        with self.assertRaises(ConfigError) as e:
            interp(p.bind(n='four'))
        self.assertEqual(str(e.exception), "max_failures: expected an integer, got 'four'")


class Helpers(unittest.TestCase):
    def test_order_and_sequential(self):
        a, b = Process(name='a', cmdline='x'), Process(name='b', cmdline='y')
        self.assertEqual(interp(S['order'](a, b)[0]), {'order': ['a', 'b']})
        t = S['SequentialTask'](processes=[a, b], resources=Resources(cpu=1, ram=MB, disk=MB))
        self.assertEqual(interp(t)['constraints'], [{'order': ['a', 'b']}])

    def test_combine_and_concat(self):
        t1 = task(Process(name='a', cmdline='x'))
        t2 = task(Process(name='b', cmdline='y'))
        c = interp(S['combine_tasks'](t1, t2))
        self.assertEqual([p['name'] for p in c['processes']], ['a', 'b'])
        self.assertEqual(c['resources']['ram'], 2 * MB)
        self.assertEqual(c['constraints'], [])
        c = interp(S['concat_tasks'](t1, t2))
        self.assertEqual(c['constraints'], [{'order': ['a', 'b']}])
        self.assertEqual(c['resources']['ram'], MB)

    def test_simple_task_and_options(self):
        t = interp(S['SimpleTask']('hello', 'echo hi'))
        self.assertEqual(t['resources'], {'cpu': 1.0, 'ram': GB, 'disk': GB, 'gpu': 0})
        self.assertEqual(S['java_options'](Xmx='1g', server=True), '-Xmx=1g -server')
        self.assertEqual(S['python_options'](port=1, debug=True), '--debug --port=1')


if __name__ == '__main__':
    unittest.main(argv=[sys.argv[0], '-v'])
