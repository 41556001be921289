/*
 * flimcd sparse helper: the Linux file calls Node does not expose
 * (fallocate punch/zero, lseek SEEK_DATA/SEEK_HOLE, posix_fadvise,
 * preadv2 RWF_NOWAIT). Every call but readCached runs as napi async work on
 * the libuv pool and returns a promise, so the event loop never blocks on
 * the filesystem; readCached never blocks either: it only copies pages
 * already in the page cache. Failures
 * reject with a Node-style system error (code, errno, syscall) so the
 * caller's generic errno mapping applies.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/uio.h>
#include <linux/falloc.h>
#include <node_api.h>

/* Largest integer a JS number holds exactly. */
#define MAX_SAFE 9007199254740991.0

enum op { OP_PUNCH, OP_ZERO, OP_SEEK_DATA, OP_SEEK_HOLE, OP_MAP, OP_WILLNEED };

typedef struct {
  napi_async_work work;
  napi_deferred deferred;
  enum op op;
  int fd;
  int64_t offset;
  int64_t length;
  int64_t result;
  int err;
  const char *syscall;
  /* OP_MAP output: triples of (offset, length, flags). */
  double *map;
  size_t map_n;
  size_t map_cap;
  size_t map_max;
} job_t;

static const char *errno_name(int e) {
  switch (e) {
    case EPERM: return "EPERM";
    case EIO: return "EIO";
    case EBADF: return "EBADF";
    case EAGAIN: return "EAGAIN";
    case ENOMEM: return "ENOMEM";
    case EACCES: return "EACCES";
    case EFBIG: return "EFBIG";
    case ENODEV: return "ENODEV";
    case EINVAL: return "EINVAL";
    case ETXTBSY: return "ETXTBSY";
    case ENOSPC: return "ENOSPC";
    case ESPIPE: return "ESPIPE";
    case EROFS: return "EROFS";
    case ENOSYS: return "ENOSYS";
    case ENXIO: return "ENXIO";
    case EINTR: return "EINTR";
    case EOVERFLOW: return "EOVERFLOW";
    case ECANCELED: return "ECANCELED";
    case EOPNOTSUPP: return "EOPNOTSUPP";
#if defined(ENOTSUP) && ENOTSUP != EOPNOTSUPP
    case ENOTSUP: return "ENOTSUP";
#endif
    default: return "EUNKNOWN";
  }
}

/* Appends an extent, merging with the previous one when the kind matches. */
static int map_push(job_t *j, int64_t off, int64_t len, int flags) {
  if (j->map_n > 0) {
    double *last = j->map + 3 * (j->map_n - 1);
    if ((int)last[2] == flags && (int64_t)(last[0] + last[1]) == off) {
      last[1] += (double)len;
      return 0;
    }
  }
  if (j->map_n == j->map_cap) {
    if (j->map_cap == j->map_max) return 1; /* caller's limit reached: a shorter answer is allowed */
    size_t cap = j->map_cap * 2 < j->map_max ? j->map_cap * 2 : j->map_max;
    double *m = realloc(j->map, cap * 3 * sizeof(double));
    if (!m) return 1;
    j->map = m;
    j->map_cap = cap;
  }
  double *slot = j->map + 3 * j->map_n++;
  slot[0] = (double)off;
  slot[1] = (double)len;
  slot[2] = (double)flags;
  return 0;
}

/* Data/hole map of [offset, offset+length). Anything odd is reported as data: that is never wrong. */
static void do_map(job_t *j) {
  const int HOLE_ZERO = 3;
  int64_t pos = j->offset, end = j->offset + j->length;
  while (pos < end) {
    off_t d = lseek(j->fd, pos, SEEK_DATA);
    if (d < 0) {
      if (errno != ENXIO) { j->err = errno; j->syscall = "lseek"; return; }
      d = end; /* no data at or after pos: hole to EOF (and the disk ends at EOF) */
    }
    if (d > pos) {
      int64_t e = d < end ? d : end;
      if (map_push(j, pos, e - pos, HOLE_ZERO)) return;
      pos = e;
      continue;
    }
    off_t h = lseek(j->fd, pos, SEEK_HOLE);
    if (h < 0 && errno != ENXIO) { j->err = errno; j->syscall = "lseek"; return; }
    int64_t e = (h <= pos || h > end) ? end : h;
    if (map_push(j, pos, e - pos, 0)) return;
    pos = e;
  }
}

static void execute(napi_env env, void *data) {
  job_t *j = data;
  int r;
  off_t o;
  switch (j->op) {
    case OP_PUNCH:
    case OP_ZERO: {
      int mode = FALLOC_FL_KEEP_SIZE | (j->op == OP_PUNCH ? FALLOC_FL_PUNCH_HOLE : FALLOC_FL_ZERO_RANGE);
      do r = fallocate(j->fd, mode, j->offset, j->length); while (r < 0 && errno == EINTR);
      if (r < 0) { j->err = errno; j->syscall = "fallocate"; }
      break;
    }
    case OP_SEEK_DATA:
    case OP_SEEK_HOLE:
      o = lseek(j->fd, j->offset, j->op == OP_SEEK_DATA ? SEEK_DATA : SEEK_HOLE);
      if (o >= 0) j->result = o;
      else if (errno == ENXIO) j->result = -1;
      else { j->err = errno; j->syscall = "lseek"; }
      break;
    case OP_MAP:
      do_map(j);
      break;
    case OP_WILLNEED:
      r = posix_fadvise(j->fd, j->offset, j->length, POSIX_FADV_WILLNEED);
      if (r != 0) { j->err = r; j->syscall = "posix_fadvise"; }
      break;
  }
}

static napi_value make_error(napi_env env, job_t *j) {
  const char *name = errno_name(j->err);
  char msg[256];
  snprintf(msg, sizeof msg, "%s: %s, %s", name, strerror(j->err), j->syscall);
  napi_value code, text, err, num, sys;
  napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &code);
  napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &text);
  napi_create_error(env, code, text, &err);
  napi_create_int32(env, -j->err, &num); /* negative, as Node's own system errors */
  napi_set_named_property(env, err, "errno", num);
  napi_create_string_utf8(env, j->syscall, NAPI_AUTO_LENGTH, &sys);
  napi_set_named_property(env, err, "syscall", sys);
  return err;
}

static void complete(napi_env env, napi_status status, void *data) {
  job_t *j = data;
  napi_value v;
  if (status != napi_ok) {
    j->err = ECANCELED;
    j->syscall = "async";
  }
  if (j->err) {
    napi_reject_deferred(env, j->deferred, make_error(env, j));
  } else if (j->op == OP_MAP) {
    void *buf;
    napi_value ab;
    size_t bytes = j->map_n * 3 * sizeof(double);
    napi_create_arraybuffer(env, bytes, &buf, &ab);
    if (bytes) memcpy(buf, j->map, bytes);
    napi_create_typedarray(env, napi_float64_array, j->map_n * 3, ab, 0, &v);
    napi_resolve_deferred(env, j->deferred, v);
  } else if (j->op == OP_SEEK_DATA || j->op == OP_SEEK_HOLE) {
    napi_create_int64(env, j->result, &v);
    napi_resolve_deferred(env, j->deferred, v);
  } else {
    napi_get_undefined(env, &v);
    napi_resolve_deferred(env, j->deferred, v);
  }
  napi_delete_async_work(env, j->work);
  free(j->map);
  free(j);
}

/* A non-negative integer offset/length given as a number (exact below 2^53) or a bigint. */
static int get_u64(napi_env env, napi_value v, const char *what, int64_t *out) {
  napi_valuetype t;
  napi_typeof(env, v, &t);
  if (t == napi_bigint) {
    bool lossless;
    napi_get_value_bigint_int64(env, v, out, &lossless);
    if (lossless && *out >= 0) return 0;
  } else if (t == napi_number) {
    double d;
    napi_get_value_double(env, v, &d);
    if (d >= 0 && d <= MAX_SAFE && d == (double)(int64_t)d) { *out = (int64_t)d; return 0; }
  }
  char msg[96];
  snprintf(msg, sizeof msg, "%s must be a non-negative safe integer or bigint", what);
  napi_throw_range_error(env, "ERR_OUT_OF_RANGE", msg);
  return -1;
}

/* Parses (fd, offset[, length[, max]]) and queues the job; returns its promise. */
static napi_value start(napi_env env, napi_callback_info info, enum op op, size_t nargs, const char *name) {
  napi_value argv[4], promise, resource;
  size_t argc = 4;
  int32_t fd;
  int64_t offset = 0, length = 0, max = 0;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < nargs) {
    napi_throw_type_error(env, "ERR_MISSING_ARGS", "missing arguments");
    return NULL;
  }
  napi_valuetype t;
  napi_typeof(env, argv[0], &t);
  if (t != napi_number || napi_get_value_int32(env, argv[0], &fd) != napi_ok || fd < 0) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "fd must be a non-negative integer");
    return NULL;
  }
  if (get_u64(env, argv[1], "offset", &offset)) return NULL;
  if (nargs > 2 && get_u64(env, argv[2], "length", &length)) return NULL;
  if (nargs > 3 && get_u64(env, argv[3], "maxExtents", &max)) return NULL;
  if (op == OP_MAP && (max < 1 || max > (1 << 24))) {
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "maxExtents must be in [1, 2^24]");
    return NULL;
  }

  job_t *j = calloc(1, sizeof *j);
  if (!j) {
    napi_throw_error(env, "ENOMEM", "out of memory");
    return NULL;
  }
  j->op = op;
  j->fd = fd;
  j->offset = offset;
  j->length = length;
  if (op == OP_MAP) {
    /* Start small (most ranges have few extents); map_push doubles up to map_max. */
    j->map_max = (size_t)max;
    j->map_cap = j->map_max < 64 ? j->map_max : 64;
    j->map = malloc(j->map_cap * 3 * sizeof(double));
    if (!j->map) { free(j); napi_throw_error(env, "ENOMEM", "out of memory"); return NULL; }
  }
  napi_create_promise(env, &j->deferred, &promise);
  napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &resource);
  napi_create_async_work(env, NULL, resource, execute, complete, j, &j->work);
  napi_queue_async_work(env, j->work);
  return promise;
}

static napi_value punch_hole(napi_env env, napi_callback_info info) { return start(env, info, OP_PUNCH, 3, "flimcd.punchHole"); }
static napi_value zero_range(napi_env env, napi_callback_info info) { return start(env, info, OP_ZERO, 3, "flimcd.zeroRange"); }
static napi_value seek_data(napi_env env, napi_callback_info info) { return start(env, info, OP_SEEK_DATA, 2, "flimcd.seekData"); }
static napi_value seek_hole(napi_env env, napi_callback_info info) { return start(env, info, OP_SEEK_HOLE, 2, "flimcd.seekHole"); }
static napi_value map_extents(napi_env env, napi_callback_info info) { return start(env, info, OP_MAP, 4, "flimcd.mapExtents"); }
static napi_value will_need(napi_env env, napi_callback_info info) { return start(env, info, OP_WILLNEED, 3, "flimcd.willNeed"); }

/*
 * readCached(fd, into, offset): preadv2(RWF_NOWAIT) into the typed array, on
 * the calling thread. Returns the bytes read (0 at EOF, fewer than asked when
 * only part is cached) or -errno (-EAGAIN: not cached; -EOPNOTSUPP: the
 * filesystem cannot say); the caller reads the rest on the pool.
 */
static napi_value read_cached(napi_env env, napi_callback_info info) {
  napi_value argv[3], out;
  size_t argc = 3;
  int32_t fd;
  int64_t offset;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  napi_valuetype t;
  bool is_ta = false;
  if (argc < 3) {
    napi_throw_type_error(env, "ERR_MISSING_ARGS", "missing arguments");
    return NULL;
  }
  napi_typeof(env, argv[0], &t);
  if (t != napi_number || napi_get_value_int32(env, argv[0], &fd) != napi_ok || fd < 0) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "fd must be a non-negative integer");
    return NULL;
  }
  napi_is_typedarray(env, argv[1], &is_ta);
  napi_typedarray_type ta_type;
  size_t n = 0;
  void *data = NULL;
  if (!is_ta || napi_get_typedarray_info(env, argv[1], &ta_type, &n, &data, NULL, NULL) != napi_ok || ta_type != napi_uint8_array) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "into must be a Uint8Array");
    return NULL;
  }
  if (get_u64(env, argv[2], "offset", &offset)) return NULL;
  struct iovec iov = { data, n };
  ssize_t r;
  do r = preadv2(fd, &iov, 1, offset, RWF_NOWAIT); while (r < 0 && errno == EINTR);
  napi_create_double(env, r < 0 ? -(double)errno : (double)r, &out);
  return out;
}

NAPI_MODULE_INIT() {
  napi_property_descriptor props[] = {
    { "punchHole", NULL, punch_hole, NULL, NULL, NULL, napi_enumerable, NULL },
    { "zeroRange", NULL, zero_range, NULL, NULL, NULL, napi_enumerable, NULL },
    { "seekData", NULL, seek_data, NULL, NULL, NULL, napi_enumerable, NULL },
    { "seekHole", NULL, seek_hole, NULL, NULL, NULL, napi_enumerable, NULL },
    { "mapExtents", NULL, map_extents, NULL, NULL, NULL, napi_enumerable, NULL },
    { "willNeed", NULL, will_need, NULL, NULL, NULL, napi_enumerable, NULL },
    { "readCached", NULL, read_cached, NULL, NULL, NULL, napi_enumerable, NULL },
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}
