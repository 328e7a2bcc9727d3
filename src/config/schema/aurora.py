# aurora.py - the Aurora schema: Process, Task, Resources, Job, Service,
# health checks, lifecycle, announcer, update and SLA policies, containers,
# with Aurora's defaults (docs/config.md lists them), and the helpers a
# .aurora file has in scope (order, SimpleTask, include, MB, ...).
#
# Executed after types.py, in the same namespace.

import os

BYTES = 1
KB = 1024 * BYTES
MB = 1024 * KB
GB = 1024 * MB
TB = 1024 * GB

# ---- Thermos: processes and tasks --------------------------------------------

LoggerDestination = Enum('LoggerDestination', ('file', 'console', 'both', 'none'))
LoggerMode = Enum('LoggerMode', ('standard', 'rotate'))


class RotatePolicy(Struct):
    log_size = Default(Integer, 100 * MB)
    backups = Default(Integer, 5)


class Logger(Struct):
    destination = Default(LoggerDestination, 'file')
    mode = Default(LoggerMode, 'standard')
    rotate = Default(RotatePolicy, RotatePolicy())


class Resources(Struct):
    cpu = Required(Float)
    ram = Required(Integer)
    disk = Required(Integer)
    gpu = Default(Integer, 0)


class Process(Struct):
    name = Required(String)
    cmdline = Required(String)
    max_failures = Default(Integer, 1)
    daemon = Default(Boolean, False)
    ephemeral = Default(Boolean, False)
    min_duration = Default(Integer, 5)
    final = Default(Boolean, False)
    logger = Default(Logger, Logger())
    resources = Resources


class Constraint(Struct):
    order = List(String)


class Task(Struct):
    name = Default(String, '{{processes[0].name}}')
    processes = Default(List(Process), [])
    constraints = Default(List(Constraint), [])
    resources = Required(Resources)
    max_failures = Default(Integer, 1)
    max_concurrency = Default(Integer, 0)
    finalization_wait = Default(Integer, 30)
    user = String


def _process_name(p):
    if isinstance(p, Process):
        n = p._get('name')
        if n is _UNSET:
            raise ConfigError('order: a process without a name')
        return n
    if isinstance(p, str):
        return p
    raise ConfigError('order: expected processes or names, got %s' % _show(p))


def order(*processes):
    """order(a, b, c): a constraint list that runs the processes in turn."""
    return [Constraint(order=[_process_name(p) for p in processes])]


def SequentialTask(*args, **kw):
    """A Task whose processes run one after another (final processes are
    left out of the order: they run after all the others anyway)."""
    t = Task(*args, **kw)
    if t._values.get('constraints'):
        raise ConfigError('SequentialTask: constraints are already set')
    procs = [p for p in t._get('processes') if p._get('final') is not True]
    return t(constraints=order(*procs) if len(procs) > 1 else [])


def SimpleTask(name, command):
    """A one-process task with 1 cpu, 1 GB of ram and 1 GB of disk."""
    return Task(name=name,
                processes=[Process(name=name, cmdline=command)],
                resources=Resources(cpu=1.0, ram=1 * GB, disk=1 * GB))


def _sum_resources(tasks, combine):
    rs = [t._get('resources') for t in tasks]
    rs = [r for r in rs if r is not _UNSET]
    if not rs:
        return None
    out = {}
    for field in ('cpu', 'ram', 'disk', 'gpu'):
        vals = [r._get(field) for r in rs]
        if any(v is _UNSET for v in vals):
            continue
        if any(isinstance(v, str) for v in vals):
            raise ConfigError('cannot add resources that are templates (%s)' % field)
        out[field] = sum(vals) if combine else max(vals)
    return Resources(**out)


def _merge_tasks(tasks, sequential):
    if not tasks:
        raise ConfigError('no tasks given')
    for t in tasks:
        if not isinstance(t, Task):
            raise ConfigError('expected Tasks, got %s' % _show(t))
    base = tasks[0]
    processes, constraints = [], []
    prev_names = []
    for t in tasks:
        procs = list(t._get('processes'))
        processes += procs
        constraints += list(t._get('constraints'))
        names = [_process_name(p) for p in procs if p._get('final') is not True]
        if sequential and names:
            constraints += [Constraint(order=[a, b]) for a in prev_names for b in names]
            prev_names = names
    res = _sum_resources(tasks, True) if not sequential else _sum_resources(tasks, False)
    kw = {'processes': processes, 'constraints': constraints}
    if res is not None:
        kw['resources'] = res
    return base(**kw)


def combine_tasks(*tasks):
    """One task running the processes of all `tasks` in parallel, with the
    sum of their resources (the first task's other fields)."""
    return _merge_tasks(list(tasks), False)


def concat_tasks(*tasks):
    """One task running the processes of `tasks` one task after another,
    with the largest of each resource."""
    return _merge_tasks(list(tasks), True)


# ---- health checks, lifecycle, announcer ---------------------------------------

class HttpHealthChecker(Struct):
    endpoint = Default(String, '/health')
    expected_response = Default(String, 'ok')
    expected_response_code = Default(Integer, 0)


class ShellHealthChecker(Struct):
    shell_command = Required(String)


class HealthCheckerConfig(Struct):
    http = HttpHealthChecker
    shell = ShellHealthChecker


DefaultHealthChecker = HealthCheckerConfig(http=HttpHealthChecker())


class HealthCheckConfig(Struct):
    health_checker = Default(HealthCheckerConfig, DefaultHealthChecker)
    initial_interval_secs = Default(Float, 15.0)
    interval_secs = Default(Float, 10.0)
    max_consecutive_failures = Default(Integer, 0)
    min_consecutive_successes = Default(Integer, 1)
    timeout_secs = Default(Float, 1.0)


class HttpLifecycleConfig(Struct):
    port = Default(String, 'health')
    graceful_shutdown_endpoint = Default(String, '/quitquitquit')
    shutdown_endpoint = Default(String, '/abortabortabort')
    graceful_shutdown_wait_secs = Default(Integer, 5)
    shutdown_wait_secs = Default(Integer, 5)


class LifecycleConfig(Struct):
    http = HttpLifecycleConfig


DefaultLifecycleConfig = LifecycleConfig(http=HttpLifecycleConfig())
DisableLifecycle = LifecycleConfig()


class Announcer(Struct):
    primary_port = Default(String, 'http')
    portmap = Default(Map(String, Choice([String, Integer])), {'aurora': '{{primary_port}}'})
    zk_path = String


# ---- updates, partitions, SLA ---------------------------------------------------

class QueueUpdateStrategy(Struct):
    batch_size = Default(Integer, 1)


class BatchUpdateStrategy(Struct):
    batch_size = Default(Integer, 1)
    autopause_after_batch = Default(Boolean, False)


class VariableBatchUpdateStrategy(Struct):
    batch_sizes = Required(List(Integer))
    autopause_after_batch = Default(Boolean, False)


class UpdateConfig(Struct):
    batch_size = Default(Integer, 1)
    watch_secs = Default(Integer, 45)
    max_per_shard_failures = Default(Integer, 0)
    max_total_failures = Default(Integer, 0)
    rollback_on_failure = Default(Boolean, True)
    wait_for_batch_completion = Default(Boolean, False)
    pulse_interval_secs = Integer
    sla_aware = Default(Boolean, False)
    update_strategy = Choice([QueueUpdateStrategy, BatchUpdateStrategy,
                              VariableBatchUpdateStrategy])


class PartitionPolicy(Struct):
    reschedule = Default(Boolean, True)
    delay_secs = Default(Integer, 0)


class CountSlaPolicy(Struct):
    count = Required(Integer)
    duration_secs = Required(Integer)


class PercentageSlaPolicy(Struct):
    percentage = Required(Float)
    duration_secs = Required(Integer)


class CoordinatorSlaPolicy(Struct):
    coordinator_url = Required(String)
    status_key = Default(String, 'drain')


# ---- containers --------------------------------------------------------------------

class AppcImage(Struct):
    name = Required(String)
    image_id = Required(String)


class DockerImage(Struct):
    name = Required(String)
    tag = Required(String)


Mode = Enum('Mode', ('RO', 'RW'))


class Volume(Struct):
    container_path = Required(String)
    host_path = Required(String)
    mode = Required(Mode)


class Parameter(Struct):
    name = Required(String)
    value = Required(String)


class Docker(Struct):
    image = Required(String)
    parameters = Default(List(Parameter), [])


class Mesos(Struct):
    image = Choice([AppcImage, DockerImage])
    volumes = Default(List(Volume), [])


class Container(Struct):
    docker = Docker
    mesos = Mesos


# ---- jobs ---------------------------------------------------------------------------

class Metadata(Struct):
    key = Required(String)
    value = Required(String)


class ExecutorConfig(Struct):
    name = Default(String, 'AuroraExecutor')
    data = Default(String, '')


class Job(Struct):
    name = Default(String, '{{task.name}}')
    role = Required(String)
    cluster = Required(String)
    environment = Required(String)
    task = Required(Task)
    instances = Default(Integer, 1)
    contact = String
    announce = Announcer
    tier = String
    cron_schedule = String
    cron_collision_policy = Default(String, 'KILL_EXISTING')
    update_config = Default(UpdateConfig, UpdateConfig())
    constraints = Map(String, String)
    metadata = Default(List(Metadata), [])
    service = Default(Boolean, False)
    max_task_failures = Default(Integer, 1)
    production = Default(Boolean, False)
    priority = Default(Integer, 0)
    health_check_config = Default(HealthCheckConfig, HealthCheckConfig())
    lifecycle = Default(LifecycleConfig, DefaultLifecycleConfig)
    task_links = Map(String, String)
    executor_config = Default(ExecutorConfig, ExecutorConfig())
    enable_hooks = Default(Boolean, False)
    partition_policy = PartitionPolicy
    sla_policy = Choice([CoordinatorSlaPolicy, CountSlaPolicy, PercentageSlaPolicy])
    container = Choice([Container, Docker, Mesos])


MesosJob = Job
Service = Job(service=True)


# ---- helpers --------------------------------------------------------------------------

def _option_string(options, dash):
    out = []
    for k, v in sorted(options.items()):
        if v is True:
            out.append(dash + str(k))
        elif v is False or v is None:
            continue
        else:
            out.append('%s%s=%s' % (dash, k, v))
    return ' '.join(out)


def java_options(**options):
    """java_options(Xmx='1g', verbose=True) -> '-Xmx=1g -verbose'."""
    return _option_string(options, '-')


def python_options(**options):
    """python_options(port=8080, debug=True) -> '--debug --port=8080'."""
    return _option_string(options, '--')


# The loader sets this to the globals of the file being evaluated.
_EVAL = {'globals': None, 'stack': []}


def include(name):
    """Evaluate another .aurora file, relative to the including one, in the
    same namespace."""
    if not isinstance(name, str):
        raise ConfigError('include: expected a file name, got %s' % _show(name))
    caller = sys._getframe(1).f_code.co_filename
    path = name if os.path.isabs(name) else os.path.join(os.path.dirname(caller), name)
    if path in _EVAL['stack']:
        raise ConfigError('include \'%s\': the file includes itself' % name)
    try:
        with open(path, 'rb') as f:
            src = f.read()
    except OSError as e:
        raise ConfigError('include \'%s\': %s' % (name, e.strerror or str(e)))
    _USER_FILES.add(path)
    code = compile(src, path, 'exec', dont_inherit=True)
    _EVAL['stack'].append(path)
    try:
        exec(code, _EVAL['globals'])
    finally:
        _EVAL['stack'].pop()


# The names a .aurora file sees.
_EXPORTS = [
    'Struct', 'Default', 'Required', 'String', 'Integer', 'Float', 'Boolean', 'List', 'Map',
    'Choice', 'Enum', 'BYTES', 'KB', 'MB', 'GB', 'TB',
    'LoggerDestination', 'LoggerMode', 'RotatePolicy', 'Logger', 'Resources', 'Process',
    'Constraint', 'Task', 'order', 'SequentialTask', 'SimpleTask', 'combine_tasks',
    'concat_tasks', 'HttpHealthChecker', 'ShellHealthChecker', 'HealthCheckerConfig',
    'DefaultHealthChecker', 'HealthCheckConfig', 'HttpLifecycleConfig', 'LifecycleConfig',
    'DefaultLifecycleConfig', 'DisableLifecycle', 'Announcer', 'QueueUpdateStrategy',
    'BatchUpdateStrategy', 'VariableBatchUpdateStrategy', 'UpdateConfig', 'PartitionPolicy',
    'CountSlaPolicy', 'PercentageSlaPolicy', 'CoordinatorSlaPolicy', 'AppcImage',
    'DockerImage', 'Mode', 'Volume', 'Parameter', 'Docker', 'Mesos', 'Container', 'Metadata',
    'ExecutorConfig', 'Job', 'MesosJob', 'Service', 'java_options', 'python_options',
    'include',
]
