#include "pretrained.h"

#include <hdf5.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "h5_tensors.h"
#include "hdf5_lock.h"

enum { NAMES_SHOWN = 8 };

typedef struct name_walk {
  const char *path, *group;
  const tensor_list *list;
  float *host;
  uint8_t *found; /* per list item */
  pretrained_report *report;
  FILE *log;
  char error[512]; /* set by a callback, reported once HDF5's iteration has returned */
} name_walk;

static void shape_text(char *out, size_t cap, int ndims, const hsize_t *dims) {
  size_t used = 0;
  out[0] = '\0';
  for (int i = 0; i < ndims && used < cap; i++)
    used += (size_t)snprintf(out + used, cap - used, "%s%llu", i ? "x" : "",
                             (unsigned long long)dims[i]);
}

/* One dataset of the file's group: load it if the model has the name (shapes must agree). An
 * error stops the iteration (returns 1) and is reported by the caller: exiting inside HDF5's
 * callback would run HDF5's exit handlers in the middle of its own iteration. */
static herr_t visit_dataset(hid_t group, const char *name, const H5L_info_t *info, void *data) {
  (void)info;
  name_walk *w = data;
  const named_tensor *t = tensor_list_find(w->list, name);
  if (!t) {
    if (w->report->unexpected++ < NAMES_SHOWN)
      fprintf(w->log, "  unexpected (not in the model, ignored): %s/%s\n", w->group, name);
    return 0;
  }
  hid_t dset = H5Dopen2(group, name, H5P_DEFAULT);
  if (dset < 0) {
    snprintf(w->error, sizeof w->error, "%s: %s/%s is not a dataset", w->path, w->group, name);
    return 1;
  }
  hid_t space = H5Dget_space(dset);
  hsize_t dims[8];
  int ndims = H5Sget_simple_extent_ndims(space);
  if (ndims < 0 || ndims > 8)
    ndims = 8 + 1; /* reported as a mismatch below */
  else
    H5Sget_simple_extent_dims(space, dims, NULL);
  H5Sclose(space);
  H5Dclose(dset);
  int same = ndims == t->ndims;
  for (int i = 0; same && i < ndims; i++) same = dims[i] == (hsize_t)t->dims[i];
  if (!same) {
    char file_shape[96], model_shape[96];
    hsize_t model_dims[4];
    for (int i = 0; i < t->ndims; i++) model_dims[i] = (hsize_t)t->dims[i];
    shape_text(file_shape, sizeof file_shape, ndims, dims);
    shape_text(model_shape, sizeof model_shape, t->ndims, model_dims);
    snprintf(w->error, sizeof w->error,
             "%s: %s/%s is %s but the model's %s is %s (model.arch and model.classes must fit "
             "the weights)",
             w->path, w->group, name,
             ndims == 0  ? "a scalar"
             : ndims > 8 ? "unreadable"
                         : file_shape,
             name, model_shape);
    return 1;
  }
  if (h5_read_floats(group, w->path, name, w->host + t->offset, t->count) != 0) {
    snprintf(w->error, sizeof w->error, "%s: cannot read %s/%s", w->path, w->group, name);
    return 1;
  }
  w->found[t - w->list->items] = 1;
  w->report->loaded++;
  return 0;
}

/* Loads group `group` of the file into `device` (a parameter or statistics buffer of list). */
static void load_group(unet *m, hid_t file, const char *path, const char *group,
                       const tensor_list *list, float *device, pretrained_report *report,
                       FILE *log) {
  float *host = fp_malloc(list->total * sizeof *host);
  m->be->download(host, device, FP_F32, list->total);
  uint8_t *found = fp_calloc((size_t)list->count, 1);
  if (H5Lexists(file, group, H5P_DEFAULT) > 0) {
    hid_t g = H5Gopen2(file, group, H5P_DEFAULT);
    if (g < 0) FP_FATAL("%s: /%s is not a group", path, group);
    name_walk w = {path, group, list, host, found, report, log, ""};
    herr_t status = H5Literate(g, H5_INDEX_NAME, H5_ITER_INC, NULL, visit_dataset, &w);
    H5Gclose(g);
    if (w.error[0]) {
      H5Fclose(file);
      FP_FATAL("%s", w.error);
    }
    FP_CHECK(status >= 0, "%s: cannot list /%s (HDF5's error stack is printed above)", path, group);
  }
  for (int i = 0; i < list->count; i++)
    if (!found[i] && report->missing++ < NAMES_SHOWN)
      fprintf(log, "  missing (keeps its initialisation): %s/%s\n", group, list->items[i].name);
  m->be->upload(device, host, FP_F32, list->total);
  free(found);
  free(host);
}

pretrained_report unet_load_pretrained(unet *m, const char *path, FILE *log) {
  pretrained_report report = {0, 0, 0};
  hdf5_lock();
  hid_t file = h5_open_read(path);
  load_group(m, file, path, "params", &m->param_list, m->params, &report, log);
  load_group(m, file, path, "buffers", &m->buffer_list, m->buffers, &report, log);
  H5Fclose(file);
  hdf5_unlock();
  FP_CHECK(report.loaded > 0,
           "%s: none of its tensors (/params/<name>, /buffers/<name>) has a name of this %s "
           "model; convert PyTorch weights with docs/examples/convert_weights.py",
           path, unet_arch_name(m->arch));
  fprintf(log, "%s: loaded %d tensors, %d missing, %d unexpected%s\n", path, report.loaded,
          report.missing, report.unexpected,
          report.missing > NAMES_SHOWN || report.unexpected > NAMES_SHOWN ? " (first names above)"
                                                                          : "");
  unet_weights_changed(m);
  return report;
}
