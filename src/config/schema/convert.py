# convert.py - evaluate a .aurora file, check each job as Aurora's client
# did, and turn it into the scheduler API's JSON (docs/config.md, "From a
# job to the API").
#
# Executed after types.py and aurora.py, in the same namespace. The entry
# point for src/config/config.c is _bo_load(path, binds, read_json); it
# never raises: it returns (code, text), where code 0 means text is the JSON
# array of jobs and any other code means text is the error message
# (1: invalid config, 2: file not found, 3: the file cannot be read).

import builtins
import getpass
import json
import math
import re
import traceback

_NS = globals()
_LOAD_OK, _LOAD_INVALID, _LOAD_NOTFOUND, _LOAD_IO = 0, 1, 2, 3

_PORT_REF = re.compile(r'\{\{\s*thermos\.ports\[\s*[\'"]?([^\]\'"{}]+?)[\'"]?\s*\]\s*\}\}')
_COLLISION_POLICIES = ('KILL_EXISTING', 'CANCEL_NEW', 'RUN_OVERLAP')
_MIN_PULSE_INTERVAL_SECS = 60


def _err(msg, path=None, loc=None):
    return ConfigError(msg, path, loc)


# ---- evaluation -------------------------------------------------------------------

def _evaluate(path, src):
    _USER_FILES.add(path)
    g = {'__name__': '__aurora__', '__builtins__': builtins}
    for name in _EXPORTS:
        g[name] = _NS[name]
    code = compile(src, path, 'exec', dont_inherit=True)
    _EVAL['globals'] = g
    _EVAL['stack'] = [path]
    try:
        exec(code, g)
    finally:
        _EVAL['globals'] = None
        _EVAL['stack'] = []
    if 'jobs' not in g:
        last = src.count(b'\n') + (0 if src.endswith(b'\n') or not src else 1)
        raise _err('\'jobs\' is not defined: the file must set jobs = [Job(...), ...]',
                   loc=(path, max(last, 1)))
    jobs = g['jobs']
    if not isinstance(jobs, (list, tuple)):
        raise _err('jobs: expected a list of jobs, got %s' % _show(jobs), loc=(path, 1))
    for i, j in enumerate(jobs):
        if not isinstance(j, Job):
            raise _err('jobs[%d]: expected a Job, got %s' % (i, _show(j)), loc=(path, 1))
    return list(jobs)


def _evaluate_json(path, src):
    try:
        doc = json.loads(src)
    except ValueError as e:
        raise _err('not JSON: %s' % getattr(e, 'msg', str(e)), loc=(path, getattr(e, 'lineno', 1)))
    items = doc['jobs'] if isinstance(doc, dict) and 'jobs' in doc else [doc]
    if not isinstance(items, list):
        raise _err('jobs: expected a list of jobs', loc=(path, 1))
    jobs = []
    for i, d in enumerate(items):
        if not isinstance(d, dict):
            raise _err('jobs[%d]: expected an object, got %s' % (i, _show(d)), loc=(path, 1))
        try:
            j = Job._TYPE.coerce(d, '')
        except ConfigError as e:
            raise _err(str(e), 'jobs[%d]' % i, (path, 1))
        object.__setattr__(j, '_loc', (path, 1))
        jobs.append(j)
    return jobs


# ---- checks ----------------------------------------------------------------------------

def _loc_at(s, path):
    """The location of the innermost struct along `path` ('task.resources')."""
    loc = s._loc
    for name in path.split('.') if path else []:
        if not isinstance(s, Struct) or name not in type(s)._FIELDS:
            break
        v = s._get(name)
        if not isinstance(v, Struct):
            break
        s = v
        loc = s._loc or loc
    return loc


def _raw(s, path):
    """The stored (uninterpolated) value along `path`, or None."""
    for name in path.split('.'):
        if not isinstance(s, Struct) or name not in type(s)._FIELDS:
            return None
        s = s._get(name)
        if s is _UNSET:
            return None
    return s


def _check_nonneg(job, d, struct_path, names):
    sub = d
    for p in struct_path.split('.'):
        sub = sub.get(p, {})
    for n in names:
        v = sub.get(n)
        if v is not None and v < 0:
            raise _err('must not be negative, got %s' % v, struct_path + '.' + n,
                       _loc_at(job, struct_path))


def _check_task(job, t):
    procs = t['processes']
    if not procs:
        raise _err('a task needs at least one process', 'task.processes', _loc_at(job, 'task'))
    raw_procs = _raw(job, 'task.processes') or []
    names = {}
    for i, p in enumerate(procs):
        loc = raw_procs[i]._loc if i < len(raw_procs) and raw_procs[i]._loc else \
            _loc_at(job, 'task')
        if p['name'] in names:
            raise _err('duplicate process name \'%s\'' % p['name'],
                       'task.processes[%d].name' % i, loc)
        names[p['name']] = p
        for n in ('max_failures', 'min_duration'):
            if p[n] < 0:
                raise _err('must not be negative, got %d' % p[n],
                           'task.processes[%d].%s' % (i, n), loc)
    for n in ('max_failures', 'max_concurrency', 'finalization_wait'):
        if t[n] < 0:
            raise _err('must not be negative, got %d' % t[n], 'task.' + n, _loc_at(job, 'task'))
    after = {n: set() for n in names}
    for i, c in enumerate(t['constraints']):
        order = c.get('order', [])
        for n in order:
            if n not in names:
                raise _err('unknown process \'%s\'' % n, 'task.constraints[%d].order' % i,
                           _loc_at(job, 'task'))
        for a, b in zip(order, order[1:]):
            after[b].add(a)
    state = {}

    def visit(n):
        state[n] = 1
        for m in after[n]:
            if state.get(m) == 1:
                raise _err('the order constraints have a cycle through \'%s\'' % m,
                           'task.constraints', _loc_at(job, 'task'))
            if m not in state:
                visit(m)
        state[n] = 2

    for n in names:
        if n not in state:
            visit(n)


def _check_update(job, d):
    u = d['update_config']
    loc = _loc_at(job, 'update_config')
    n = d['instances']
    _check_nonneg(job, d, 'update_config',
                  ('watch_secs', 'max_per_shard_failures', 'max_total_failures'))
    if u['batch_size'] <= 0:
        raise _err('must be > 0, got %d' % u['batch_size'], 'update_config.batch_size', loc)
    if u['max_total_failures'] >= n:
        raise _err('must be less than the number of instances (%d): use at most %d'
                   % (n, n - 1), 'update_config.max_total_failures', loc)
    if 'dedicated' in (d.get('constraints') or {}):
        need = int(math.floor(n * 0.02))
        if u['max_total_failures'] < need:
            raise _err('a dedicated job of %d instances must tolerate at least 2%% of them '
                       'failing: use at least %d' % (n, need),
                       'update_config.max_total_failures', loc)
    pulse = u.get('pulse_interval_secs')
    if pulse is not None and pulse < _MIN_PULSE_INTERVAL_SECS:
        raise _err('must be at least %d, got %d' % (_MIN_PULSE_INTERVAL_SECS, pulse),
                   'update_config.pulse_interval_secs', loc)
    s = u.get('update_strategy')
    if s is not None:
        if u['batch_size'] > 1:
            raise _err('cannot be combined with batch_size > 1', 'update_config.update_strategy',
                       loc)
        if u['wait_for_batch_completion']:
            raise _err('cannot be combined with wait_for_batch_completion',
                       'update_config.update_strategy', loc)
        sizes = s.get('batch_sizes', [s.get('batch_size', 1)])
        if not sizes or any(x <= 0 for x in sizes):
            raise _err('batch sizes must be > 0', 'update_config.update_strategy', loc)


def _check_health(job, d):
    _check_nonneg(job, d, 'health_check_config',
                  ('initial_interval_secs', 'interval_secs', 'max_consecutive_failures',
                   'min_consecutive_successes', 'timeout_secs'))
    hc = d['health_check_config'].get('health_checker', {})
    if 'http' in hc and 'shell' in hc:
        raise _err('set http or shell, not both', 'health_check_config.health_checker',
                   _loc_at(job, 'health_check_config.health_checker'))


# ---- conversion --------------------------------------------------------------------------

def _strings(v, out):
    if isinstance(v, str):
        out.append(v)
    elif isinstance(v, dict):
        for x in v.values():
            _strings(x, out)
    elif isinstance(v, list):
        for x in v:
            _strings(x, out)
    return out


def _is_static(v):
    return (isinstance(v, int) and not isinstance(v, bool)) or \
        (isinstance(v, str) and v.isdigit())


def _ports(job, data):
    """The named ports the task needs: every {{thermos.ports[X]}} with
    announce aliases followed, less static ports."""
    portmap = data.get('announce', {}).get('portmap', {})
    loc = _loc_at(job, 'announce')
    ports = set()
    for s in _strings(data, []):
        for name in _PORT_REF.findall(s):
            seen = []
            while name in portmap:
                if name in seen:
                    raise _err('alias cycle: %s' % ' -> '.join(seen + [name]),
                               'announce.portmap', loc)
                seen.append(name)
                name = portmap[name]
                if _is_static(name):
                    name = None
                    break
            if name is not None:
                ports.add(str(name))
    return sorted(ports)


def _constraints(job, cmap):
    out = []
    loc = _loc_at(job, '')
    for name, v in (cmap or {}).items():
        path = 'constraints[%s]' % name
        if v.startswith('limit:'):
            try:
                n = int(v[len('limit:'):].strip())
            except ValueError:
                n = 0
            if n <= 0:
                raise _err('\'%s\': a limit must be a positive integer' % v, path, loc)
            out.append({'name': name, 'limit': {'limit': n}})
            continue
        negated = v.startswith('!')
        values = [x.strip() for x in v[1 if negated else 0:].split(',')]
        if not all(values):
            raise _err('\'%s\': empty value' % v, path, loc)
        out.append({'name': name, 'value': {'negated': negated, 'values': values}})
    return out


def _choice_key(raw, keys):
    for cls, key in keys:
        if isinstance(raw, cls):
            return key
    return None


def _container(job, c):
    raw = _raw(job, 'container')
    if isinstance(raw, Container):
        if 'docker' in c and 'mesos' in c:
            raise _err('set docker or mesos, not both', 'container', _loc_at(job, 'container'))
        if 'docker' in c:
            raw, c = raw._get('docker'), c['docker']
        elif 'mesos' in c:
            raw, c = raw._get('mesos'), c['mesos']
        else:
            return None
    if isinstance(raw, Docker):
        return {'docker': {'image': c['image'], 'parameters': c['parameters']}}
    out = {'volumes': c['volumes']}
    img = raw._get('image')
    if img is not _UNSET:
        out['image'] = {_choice_key(img, ((DockerImage, 'docker'), (AppcImage, 'appc'))):
                        c['image']}
    return {'mesos': out}


def _owner():
    try:
        return getpass.getuser()
    except Exception:
        return None


def _build(job, d):
    warnings = []
    t = d['task']
    _check_task(job, t)
    if d['instances'] <= 0:
        raise _err('must be > 0, got %d' % d['instances'], 'instances', _loc_at(job, ''))
    if d['max_task_failures'] < -1:
        raise _err('must be -1 (no limit) or more, got %d' % d['max_task_failures'],
                   'max_task_failures', _loc_at(job, ''))
    _check_update(job, d)
    _check_health(job, d)
    cron = d.get('cron_schedule', '').strip()
    if d['cron_collision_policy'] not in _COLLISION_POLICIES:
        raise _err('\'%s\' is not one of %s' % (d['cron_collision_policy'],
                                                ', '.join(_COLLISION_POLICIES)),
                   'cron_collision_policy', _loc_at(job, ''))
    if cron and d['service']:
        raise _err('a cron job cannot be a service', 'service', _loc_at(job, ''))

    res = t['resources']
    rloc = _loc_at(job, 'task.resources')
    cpu, gpu = res['cpu'], res['gpu']
    ram_mb, disk_mb = res['ram'] // MB, res['disk'] // MB
    if not cpu > 0:
        raise _err('must be > 0, got %s' % cpu, 'task.resources.cpu', rloc)
    if ram_mb <= 0:
        raise _err('must be at least 1 MB, got %d bytes' % res['ram'], 'task.resources.ram', rloc)
    if disk_mb <= 0:
        raise _err('must be at least 1 MB, got %d bytes' % res['disk'], 'task.resources.disk',
                   rloc)
    if gpu < 0:
        raise _err('must not be negative, got %d' % gpu, 'task.resources.gpu', rloc)

    ec = d['executor_config']
    data = {k: v for k, v in d.items()
            if k not in ('update_config', 'instances', 'executor_config')}
    ports = _ports(job, data)
    portmap = d.get('announce', {}).get('portmap', {})
    if any(_is_static(v) for v in portmap.values()) and \
            'dedicated' not in (d.get('constraints') or {}):
        raise _err('static ports need a \'dedicated\' constraint', 'announce.portmap',
                   _loc_at(job, 'announce'))
    if 'announce' in d:
        primary = d['announce']['primary_port']
        if primary not in ports and not _is_static(portmap.get(primary)):
            warnings.append('announce.primary_port: \'%s\' is not used: listen on '
                            '{{thermos.ports[%s]}}' % (primary, primary))
    if d['production']:
        warnings.append('production: deprecated, use tier=\'preferred\'')

    resources = [{'num_cpus': cpu}, {'ram_mb': ram_mb}, {'disk_mb': disk_mb}]
    if gpu:
        resources.append({'num_gpus': gpu})
    resources += [{'named_port': p} for p in ports]

    key = {'role': d['role'], 'environment': d['environment'], 'name': d['name']}
    owner = _owner()
    tc = {'job': dict(key)}
    if owner:
        tc['owner_user'] = owner
    tc['is_service'] = d['service']
    tc['priority'] = d['priority']
    tc['max_task_failures'] = d['max_task_failures']
    tc['production'] = d['production']
    tier = d.get('tier', '') or ('preferred' if d['production'] else '')
    if tier:
        tc['tier'] = tier
    tc['resources'] = resources
    tc['constraints'] = _constraints(job, d.get('constraints'))
    if d.get('task_links'):
        tc['task_links'] = d['task_links']
    if d.get('contact'):
        tc['contact_email'] = d['contact']
    tc['executor_config'] = {
        'name': ec['name'],
        'data': ec['data'] or json.dumps(data, sort_keys=True, separators=(',', ':')),
    }
    tc['metadata'] = [{'key': m['key'], 'value': m['value']} for m in d['metadata']]
    if 'partition_policy' in d:
        tc['partition_policy'] = d['partition_policy']
    if 'sla_policy' in d:
        kind = _choice_key(_raw(job, 'sla_policy'),
                           ((CountSlaPolicy, 'count'), (PercentageSlaPolicy, 'percentage'),
                            (CoordinatorSlaPolicy, 'coordinator')))
        tc['sla_policy'] = {kind: d['sla_policy']}
    if 'container' in d:
        c = _container(job, d['container'])
        if c is not None:
            tc['container'] = c

    api = {'key': key}
    if owner:
        api['owner_user'] = owner
    api['instance_count'] = d['instances']
    api['task_config'] = tc
    if cron:
        api['cron_schedule'] = cron
        api['cron_collision_policy'] = d['cron_collision_policy']

    update = dict(d['update_config'])
    if 'update_strategy' in update:
        kind = _choice_key(_raw(job, 'update_config.update_strategy'),
                           ((QueueUpdateStrategy, 'queue'), (BatchUpdateStrategy, 'batch'),
                            (VariableBatchUpdateStrategy, 'var_batch')))
        update['update_strategy'] = {kind: update['update_strategy']}
    return api, update, warnings


def _job_name(job):
    raw = job._get('name')
    try:
        return String.interp(raw, _Ctx(job, None), 'name')
    except (ConfigError, RecursionError):
        return raw if isinstance(raw, str) else '?'


def _convert(job, binds):
    if binds:
        job = job.bind(dict(binds))
    name = _job_name(job)
    try:
        d = _struct_interp(job, None, '')
        api, update, warnings = _build(job, d)
    except ConfigError as e:
        raise _err('job \'%s\': %s' % (name, e), loc=e.loc or job._loc)
    except RecursionError:
        raise _err('job \'%s\': templates refer to each other in a cycle' % name, loc=job._loc)
    loc = job._loc or ('?', 0)
    return {
        'cluster': d['cluster'],
        'key': '%s/%s/%s/%s' % (d['cluster'], d['role'], d['environment'], d['name']),
        'job': api,
        'update_config': update,
        'source': {'file': loc[0], 'line': loc[1]},
        'warnings': warnings,
    }


# ---- errors and the entry point ---------------------------------------------------------------

def _innermost_user_loc(tb):
    loc = None
    while tb is not None:
        f = tb.tb_frame
        if f.f_code.co_filename in _USER_FILES:
            loc = (f.f_code.co_filename, tb.tb_lineno)
        tb = tb.tb_next
    return loc


def _format_error(e, path):
    if isinstance(e, SyntaxError):
        loc = (e.filename or path, e.lineno or 1)
        msg = 'syntax error: %s' % e.msg
    elif isinstance(e, ConfigError):
        loc = e.loc or _innermost_user_loc(e.__traceback__)
        msg = str(e)
    else:
        loc = _innermost_user_loc(e.__traceback__)
        msg = ''.join(traceback.format_exception_only(type(e), e)).strip()
        if isinstance(e, SystemExit):
            msg = 'the file called exit(%s)' % ('' if e.code is None else e.code)
    if loc is None:
        loc = (path, 1)
    return '%s:%d: %s' % (loc[0], loc[1], msg)


def _flush():
    for f in (sys.stdout, sys.stderr):
        try:
            f.flush()
        except Exception:
            pass


def _bo_load(path, binds, read_json):
    _USER_FILES.clear()
    _ACTIVE.clear()
    try:
        with open(path, 'rb') as f:
            src = f.read()
    except FileNotFoundError as e:
        return _LOAD_NOTFOUND, 'open \'%s\': %s' % (path, e.strerror)
    except OSError as e:
        return _LOAD_IO, 'read \'%s\': %s' % (path, e.strerror or str(e))
    try:
        jobs = _evaluate_json(path, src) if read_json else _evaluate(path, src)
        out = [_convert(j, binds) for j in jobs]
        return _LOAD_OK, json.dumps(out)
    except BaseException as e:
        return _LOAD_INVALID, _format_error(e, path)
    finally:
        _flush()
        _USER_FILES.clear()
        _ACTIVE.clear()
