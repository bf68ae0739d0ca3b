#include "h5zstd_filter.h"

#include <stdio.h>
#include <stdlib.h>
#include <zstd.h>

#include "h5zstd.h"

/* HDF5 only learns that a filter returned 0; the reason goes to stderr. */
static size_t filter_failure(const char *call, const char *reason) {
  fprintf(stderr, "error: HDF5 zstd filter %d: %s: %s\n", H5ZSTD_FILTER_ID, call, reason);
  return 0;
}

static int compression_level(size_t cd_nelmts, const unsigned int cd_values[]) {
  if (cd_nelmts == 0) return H5ZSTD_DEFAULT_LEVEL;
  /* Same clamping as the standard plugin: the level arrives as unsigned. */
  int level = (int)cd_values[0];
  if (level < 1) return 1;
  if (level > ZSTD_maxCLevel()) return ZSTD_maxCLevel();
  return level;
}

static size_t compress_chunk(int level, size_t nbytes, size_t *buf_size, void **buf) {
  size_t capacity = ZSTD_compressBound(nbytes);
  void *out = malloc(capacity);
  if (!out) return filter_failure("malloc", "out of memory");
  size_t written = ZSTD_compress(out, capacity, *buf, nbytes, level);
  if (ZSTD_isError(written)) {
    free(out);
    return filter_failure("ZSTD_compress", ZSTD_getErrorName(written));
  }
  free(*buf);
  *buf = out;
  *buf_size = capacity;
  return written;
}

/* Streaming decompression: handles frames with or without a recorded content
 * size and several concatenated frames, as other writers may produce. */
static size_t decompress_chunk(size_t nbytes, size_t *buf_size, void **buf) {
  unsigned long long content = ZSTD_getFrameContentSize(*buf, nbytes);
  if (content == ZSTD_CONTENTSIZE_ERROR)
    return filter_failure("ZSTD_getFrameContentSize", "chunk is not a zstd frame");
  size_t capacity =
      content == ZSTD_CONTENTSIZE_UNKNOWN || content == 0 ? ZSTD_DStreamOutSize() : (size_t)content;
  ZSTD_DStream *stream = ZSTD_createDStream();
  unsigned char *out = malloc(capacity);
  if (!stream || !out) {
    ZSTD_freeDStream(stream);
    free(out);
    return filter_failure("ZSTD_createDStream", "out of memory");
  }
  ZSTD_inBuffer in = {*buf, nbytes, 0};
  ZSTD_outBuffer dst = {out, capacity, 0};
  size_t status = 1;
  while (in.pos < in.size || (status != 0 && dst.pos == dst.size)) {
    if (dst.pos == dst.size) {
      unsigned char *grown = realloc(out, 2 * dst.size);
      if (!grown) {
        status = (size_t)-1;
        break;
      }
      out = grown;
      dst.dst = out;
      dst.size *= 2;
    }
    size_t before_in = in.pos, before_out = dst.pos;
    status = ZSTD_decompressStream(stream, &dst, &in);
    if (ZSTD_isError(status)) break;
    if (in.pos == before_in && dst.pos == before_out && dst.pos < dst.size) break;
  }
  ZSTD_freeDStream(stream);
  if (status != 0) {
    free(out);
    return filter_failure("ZSTD_decompressStream", status == (size_t)-1 ? "out of memory"
                                                   : ZSTD_isError(status)
                                                       ? ZSTD_getErrorName(status)
                                                       : "truncated zstd frame");
  }
  free(*buf);
  *buf = out;
  *buf_size = dst.size;
  return dst.pos;
}

static size_t zstd_filter(unsigned int flags, size_t cd_nelmts, const unsigned int cd_values[],
                          size_t nbytes, size_t *buf_size, void **buf) {
  if (flags & H5Z_FLAG_REVERSE) return decompress_chunk(nbytes, buf_size, buf);
  return compress_chunk(compression_level(cd_nelmts, cd_values), nbytes, buf_size, buf);
}

const H5Z_class2_t h5zstd_filter_class = {
    H5Z_CLASS_T_VERS,
    H5ZSTD_FILTER_ID,
    1,
    1,
    "Zstandard compression: http://www.zstd.net",
    NULL,
    NULL,
    zstd_filter,
};
