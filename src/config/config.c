/*
 * config.c - .aurora files through an embedded CPython (config.h).
 *
 * Happy path. The first bo_config_load starts an isolated interpreter
 * (PyConfig_InitIsolatedConfig: no site, no user site, no PYTHON* variables,
 * safe_path, no signal handlers, warnings ignored; the standard library
 * stays importable so files can `import os, getpass`). It then executes the
 * schema's sources, which the build compiled into the binary
 * (schema_gen.c, made from schema/ by gen_schema.py), in order into one
 * private module dict, and keeps its `_bo_load` function. Each load calls
 * _bo_load(path, [(name, value), ...], read_json): the file is evaluated in
 * a fresh globals dict with the schema's names, each job is interpolated,
 * checked and converted in Python, and the answer comes back as
 * (code, text): code 0 with the JSON array as text, parsed here with
 * jansson. Python prints nothing of its own; what the user's file prints
 * goes to stdout and is flushed before the call returns.
 *
 * Failure modes:
 * - a config problem (a Python exception of any kind in the user's code, a
 *   schema or template error, a failed check): _bo_load returns code 1 and
 *   the message "FILE:LINE: ..." -> BO_EINVAL;
 * - the file is missing (code 2) -> BO_ENOTFOUND; unreadable (code 3) ->
 *   BO_EIO;
 * - the interpreter does not start or the embedded schema fails to load:
 *   BO_EINTERNAL, and the next call tries again from scratch;
 * - an exception escaping _bo_load (a bug, or MemoryError): BO_EINTERNAL
 *   (BO_ENOMEM for MemoryError).
 *
 * The interpreter is process-wide state in CPython, so this module keeps
 * its handle in one static; config.h says the API is single-threaded.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <assert.h>
#include <stdbool.h>
#include <string.h>

#include "common/err.h"
#include "config/config.h"
#include "config/schema_src.h"

/* _bo_load's codes (schema/convert.py). */
enum {
    LOAD_OK = 0,
    LOAD_INVALID = 1,
    LOAD_NOTFOUND = 2,
    LOAD_IO = 3,
};

static struct {
    bool up;
    PyObject *load; /* the schema's _bo_load */
} g_py;

/* Turn the pending Python exception into an error; clears it. */
static int py_error(struct bo_err *err, int code, const char *what)
{
#if PY_VERSION_HEX >= 0x030C0000
    PyObject *value = PyErr_GetRaisedException();
    PyObject *type = value != NULL ? Py_NewRef((PyObject *)Py_TYPE(value)) : NULL;
    PyObject *tb = NULL;
#else
    PyObject *type = NULL, *value = NULL, *tb = NULL;
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
#endif
    if (type != NULL && PyErr_GivenExceptionMatches(type, PyExc_MemoryError)) {
        code = BO_ENOMEM;
    }
    const char *msg = "unknown error";
    PyObject *s = value != NULL ? PyObject_Str(value) : NULL;
    if (s != NULL) {
        const char *u = PyUnicode_AsUTF8(s);
        if (u != NULL) {
            msg = u;
        }
    }
    const char *tname = type != NULL ? ((PyTypeObject *)type)->tp_name : "?";
    bo_errf(err, code, "%s: %s: %s", what, tname, msg);
    Py_XDECREF(s);
    Py_XDECREF(type);
    Py_XDECREF(value);
    Py_XDECREF(tb);
    PyErr_Clear();
    return code;
}

static int load_schema(struct bo_err *err)
{
    PyObject *mod = PyModule_New("_borealis_config");
    if (mod == NULL) {
        return py_error(err, BO_EINTERNAL, "config: schema");
    }
    PyObject *ns = PyModule_GetDict(mod); /* borrowed */
    if (PyDict_SetItemString(ns, "__builtins__", PyEval_GetBuiltins()) != 0) {
        Py_DECREF(mod);
        return py_error(err, BO_EINTERNAL, "config: schema");
    }
    for (size_t i = 0; i < bo_config_schema_n; i++) {
        char fname[128];
        snprintf(fname, sizeof(fname), "<borealis>/schema/%s", bo_config_schema[i].name);
        PyObject *code = Py_CompileString(bo_config_schema[i].source, fname, Py_file_input);
        PyObject *r = code != NULL ? PyEval_EvalCode(code, ns, ns) : NULL;
        Py_XDECREF(code);
        if (r == NULL) {
            int rv = py_error(err, BO_EINTERNAL, "config: schema");
            Py_DECREF(mod);
            return bo_err_wrapf(err, rv, "load '%s'", bo_config_schema[i].name);
        }
        Py_DECREF(r);
    }
    PyObject *load = PyDict_GetItemString(ns, "_bo_load"); /* borrowed */
    if (load == NULL || !PyCallable_Check(load)) {
        Py_DECREF(mod);
        return bo_errf(err, BO_EINTERNAL, "config: schema: no _bo_load");
    }
    Py_INCREF(load);
    g_py.load = load;
    Py_DECREF(mod); /* the function keeps its globals alive */
    return BO_OK;
}

static int py_start(struct bo_err *err)
{
    if (g_py.up) {
        return BO_OK;
    }
    PyConfig cfg;
    PyConfig_InitIsolatedConfig(&cfg);
    cfg.site_import = 0;
    cfg.user_site_directory = 0;
    cfg.use_environment = 0;
    cfg.safe_path = 1;
    cfg.install_signal_handlers = 0;
    cfg.write_bytecode = 0;
    cfg.parse_argv = 0;
    cfg.pathconfig_warnings = 0;
    PyStatus st = PyWideStringList_Append(&cfg.warnoptions, L"ignore");
    if (!PyStatus_Exception(st)) {
        st = Py_InitializeFromConfig(&cfg);
    }
    PyConfig_Clear(&cfg);
    if (PyStatus_Exception(st)) {
        return bo_errf(err, BO_EINTERNAL, "config: start python: %s",
                       st.err_msg != NULL ? st.err_msg : "failed");
    }
    int rv = load_schema(err);
    if (rv != BO_OK) {
        Py_FinalizeEx();
        return rv;
    }
    g_py.up = true;
    return BO_OK;
}

void bo_config_shutdown(void)
{
    if (!g_py.up) {
        return;
    }
    Py_CLEAR(g_py.load);
    Py_FinalizeEx();
    g_py.up = false;
}

/* _bo_load's arguments: (path, [(name, value), ...], read_json). */
static PyObject *make_args(const char *path, const struct bo_config_opts *opts, struct bo_err *err,
                           int *rv)
{
    size_t n = opts != NULL ? opts->n_binds : 0;
    PyObject *binds = PyList_New((Py_ssize_t)n);
    if (binds == NULL) {
        *rv = py_error(err, BO_ENOMEM, "config");
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        const struct bo_config_bind *b = &opts->binds[i];
        assert(b->name != NULL && b->value != NULL);
        PyObject *t = Py_BuildValue("(ss)", b->name, b->value);
        if (t == NULL) {
            PyErr_Clear();
            Py_DECREF(binds);
            *rv = bo_errf(err, BO_EINVAL, "bind '%s': not valid UTF-8", b->name);
            return NULL;
        }
        PyList_SET_ITEM(binds, (Py_ssize_t)i, t);
    }
    PyObject *p = PyUnicode_DecodeFSDefault(path);
    if (p == NULL) {
        Py_DECREF(binds);
        *rv = py_error(err, BO_EINVAL, "config: path");
        return NULL;
    }
    PyObject *args =
        Py_BuildValue("(NNO)", p, binds, opts != NULL && opts->read_json ? Py_True : Py_False);
    if (args == NULL) {
        *rv = py_error(err, BO_ENOMEM, "config");
    }
    return args;
}

int bo_config_load(const char *path, const struct bo_config_opts *opts, json_t **jobs,
                   struct bo_err *err)
{
    assert(path != NULL && jobs != NULL);
    int rv = py_start(err);
    if (rv != BO_OK) {
        return rv;
    }
    PyObject *args = make_args(path, opts, err, &rv);
    if (args == NULL) {
        return rv;
    }
    PyObject *res = PyObject_CallObject(g_py.load, args);
    Py_DECREF(args);
    if (res == NULL) {
        return py_error(err, BO_EINTERNAL, "config: evaluate");
    }
    long code = -1;
    const char *text = NULL;
    Py_ssize_t len = 0;
    if (PyTuple_Check(res) && PyTuple_GET_SIZE(res) == 2) {
        code = PyLong_AsLong(PyTuple_GET_ITEM(res, 0));
        text = PyUnicode_AsUTF8AndSize(PyTuple_GET_ITEM(res, 1), &len);
    }
    if (text == NULL || code < 0) {
        rv = PyErr_Occurred() ? py_error(err, BO_EINTERNAL, "config: evaluate")
                              : bo_errf(err, BO_EINTERNAL, "config: evaluate: bad answer");
        Py_DECREF(res);
        return rv;
    }
    switch (code) {
    case LOAD_OK: {
        json_error_t je;
        json_t *j = json_loadb(text, (size_t)len, 0, &je);
        if (j == NULL || !json_is_array(j)) {
            rv = bo_errf(err, BO_EINTERNAL, "config: evaluate: bad JSON: %s",
                         j == NULL ? je.text : "not an array");
            json_decref(j);
            break;
        }
        *jobs = j;
        rv = BO_OK;
        break;
    }
    case LOAD_NOTFOUND:
        rv = bo_errf(err, BO_ENOTFOUND, "%s", text);
        break;
    case LOAD_IO:
        rv = bo_errf(err, BO_EIO, "%s", text);
        break;
    default:
        rv = bo_errf(err, BO_EINVAL, "%s", text);
        break;
    }
    Py_DECREF(res);
    return rv;
}
