/*
 * flimcd page digests: XXH3-128 of each 4 KiB of a buffer, for the trace
 * recorder (src/workload/page-digest.ts). The hash is the system's libxxhash
 * (Debian's libxxhash0), opened with dlopen so that the addon builds without
 * its headers and loads without the library: then `loadError` says why and
 * flimcd digests the same XXH3-128 with hash-wasm, about ten times slower.
 * libxxhash picks its widest vector code (SSE2/AVX2/AVX-512) at run time
 * through its _dispatch entry points when it has them.
 *
 * digestPages runs on the calling thread: it is a few microseconds per MiB
 * of hashing, cheaper than any hand-off to another thread.
 */
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <node_api.h>

#define PAGE 4096
#define DIGEST 16

/* XXH128_hash_t of xxhash.h: two 64-bit halves, low first. */
typedef struct {
  uint64_t low64;
  uint64_t high64;
} xxh128_t;
typedef xxh128_t (*xxh3_128_fn)(const void *data, size_t len);

static xxh3_128_fn xxh3_128;
static char load_error[256];

static void load_xxhash(void) {
  void *lib = dlopen("libxxhash.so.0", RTLD_NOW | RTLD_LOCAL);
  if (!lib) {
    snprintf(load_error, sizeof load_error, "libxxhash.so.0 not found (%s)", dlerror());
    return;
  }
  xxh3_128 = (xxh3_128_fn)dlsym(lib, "XXH3_128bits_dispatch");
  if (!xxh3_128) xxh3_128 = (xxh3_128_fn)dlsym(lib, "XXH3_128bits");
  if (!xxh3_128) snprintf(load_error, sizeof load_error, "libxxhash.so.0 has no XXH3_128bits");
}

/* The canonical (big-endian, high half first) form: the hex of these 16 bytes is xxhsum's and hash-wasm's. */
static void put_be64(uint8_t *p, uint64_t v) {
  for (int i = 7; i >= 0; i--, v >>= 8) p[i] = (uint8_t)v;
}

static int get_bytes(napi_env env, napi_value v, const char *what, uint8_t **data, size_t *n) {
  bool is_ta = false;
  napi_typedarray_type type;
  void *p = NULL;
  napi_is_typedarray(env, v, &is_ta);
  if (!is_ta || napi_get_typedarray_info(env, v, &type, n, &p, NULL, NULL) != napi_ok || type != napi_uint8_array) {
    char msg[64];
    snprintf(msg, sizeof msg, "%s must be a Uint8Array", what);
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", msg);
    return 1;
  }
  *data = p;
  return 0;
}

/*
 * digestPages(data, out, at): the digest of each 4 KiB of data (the last
 * piece may be shorter), 16 bytes each, into out from byte `at`. Returns the
 * number of digests. Throws when out has no room for them all.
 */
static napi_value digest_pages(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3], ret;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 3) {
    napi_throw_type_error(env, "ERR_MISSING_ARGS", "missing arguments");
    return NULL;
  }
  uint8_t *data, *out;
  size_t n, out_n;
  double at_d;
  if (get_bytes(env, argv[0], "data", &data, &n) || get_bytes(env, argv[1], "out", &out, &out_n)) return NULL;
  if (napi_get_value_double(env, argv[2], &at_d) != napi_ok || !(at_d >= 0) || at_d != (double)(size_t)at_d) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "at must be a non-negative integer");
    return NULL;
  }
  size_t at = (size_t)at_d;
  size_t pages = (n + PAGE - 1) / PAGE;
  if (at > out_n || (out_n - at) / DIGEST < pages) {
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "out has no room for the digests");
    return NULL;
  }
  for (size_t p = 0; p < pages; p++) {
    size_t len = n - p * PAGE < PAGE ? n - p * PAGE : PAGE;
    xxh128_t h = xxh3_128(data + p * PAGE, len);
    put_be64(out + at + p * DIGEST, h.high64);
    put_be64(out + at + p * DIGEST + 8, h.low64);
  }
  napi_create_double(env, (double)pages, &ret);
  return ret;
}

NAPI_MODULE_INIT() {
  load_xxhash();
  if (xxh3_128) {
    napi_property_descriptor props[] = {
      { "digestPages", NULL, digest_pages, NULL, NULL, NULL, napi_enumerable, NULL },
    };
    napi_define_properties(env, exports, 1, props);
  } else {
    napi_value msg;
    napi_create_string_utf8(env, load_error, NAPI_AUTO_LENGTH, &msg);
    napi_set_named_property(env, exports, "loadError", msg);
  }
  return exports;
}
