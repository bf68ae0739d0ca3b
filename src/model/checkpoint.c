#include "checkpoint.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "durable.h"
#include "h5_tensors.h"
#include "hdf5_lock.h"

static void write_list(hid_t file, const char *group, const backend *be, const tensor_list *list,
                       const float *data) {
  float *host = fp_malloc(list->total * sizeof *host);
  be->download(host, data, FP_F32, list->total);
  h5_write_tensor_list(file, group, list, host);
  free(host);
}

static void write_class_names(hid_t file, int classes, const char *const *names) {
  hid_t type = H5Tcopy(H5T_C_S1);
  H5_CHECK(H5Tset_size(type, H5T_VARIABLE));
  H5_CHECK(H5Tset_cset(type, H5T_CSET_UTF8));
  hsize_t dims[1] = {(hsize_t)classes};
  hid_t space = H5Screate_simple(1, dims, NULL);
  hid_t attr = H5Acreate2(file, "class_names", type, space, H5P_DEFAULT, H5P_DEFAULT);
  H5_CHECK(attr);
  H5_CHECK(H5Awrite(attr, type, names));
  H5Aclose(attr);
  H5Sclose(space);
  H5Tclose(type);
}

static void write_confusion(hid_t file, int classes, const int64_t *counts) {
  hsize_t dims[2] = {(hsize_t)classes, (hsize_t)classes};
  hid_t space = H5Screate_simple(2, dims, NULL);
  H5_CHECK(space);
  hid_t set = H5Dcreate2(file, "epoch_confusion", H5T_STD_I64LE, space, H5P_DEFAULT, H5P_DEFAULT,
                         H5P_DEFAULT);
  H5_CHECK(set);
  H5_CHECK(H5Dwrite(set, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, counts));
  H5Dclose(set);
  H5Sclose(space);
}

static void read_confusion(hid_t file, const char *path, int classes, int64_t *counts) {
  memset(counts, 0, (size_t)classes * classes * sizeof *counts);
  if (H5Lexists(file, "epoch_confusion", H5P_DEFAULT) <= 0) return;
  hid_t set = H5Dopen2(file, "epoch_confusion", H5P_DEFAULT);
  H5_CHECK(set);
  hid_t space = H5Dget_space(set);
  hsize_t dims[2] = {0, 0};
  if (H5Sget_simple_extent_ndims(space) != 2 || H5Sget_simple_extent_dims(space, dims, NULL) < 0 ||
      dims[0] != (hsize_t)classes || dims[1] != (hsize_t)classes)
    FP_FATAL("%s: epoch_confusion is not %dx%d", path, classes, classes);
  H5_CHECK(H5Dread(set, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, counts));
  H5Sclose(space);
  H5Dclose(set);
}

static void save_locked(const char *path, const unet *m, const optimizer *opt,
                        const checkpoint_info *info, const char *config_text,
                        const char *const *class_names) {
  char temporary[4096];
  int n = snprintf(temporary, sizeof temporary, "%s.tmp.%ld", path, (long)getpid());
  FP_CHECK(n > 0 && (size_t)n < sizeof temporary, "checkpoint path too long: %s", path);
  hid_t file = H5Fcreate(temporary, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  if (file < 0) FP_FATAL("cannot create checkpoint %s", temporary);
  h5_write_attr_string(file, "arch", unet_arch_name(m->arch));
  h5_write_attr_long(file, "classes", m->classes);
  h5_write_attr_long(file, "height", m->height);
  h5_write_attr_long(file, "width", m->width);
  h5_write_attr_string(file, "branches", branch_mode_name(m->br.mode));
  h5_write_attr_long(file, "inject_blocks", (long)m->br.inject_blocks);
  h5_write_attr_double(file, "branch_dropout", m->br.dropout);
  h5_write_attr_long(file, "step", info->step);
  h5_write_attr_long(file, "epoch", info->epoch);
  h5_write_attr_double(file, "best_metric", info->best_metric);
  h5_write_attr_long(file, "best_epoch", info->best_epoch);
  h5_write_attr_string(file, "config", config_text ? config_text : "");
  h5_write_attr_long(file, "global_batch", info->global_batch);
  h5_write_attr_double(file, "epoch_loss_sum", info->epoch_loss_sum);
  h5_write_attr_long(file, "format_version", 3);
  if (info->epoch_confusion) write_confusion(file, m->classes, info->epoch_confusion);
  if (class_names) write_class_names(file, m->classes, class_names);
  write_list(file, "params", m->be, &m->param_list, m->params);
  write_list(file, "buffers", m->be, &m->buffer_list, m->buffers);
  if (opt) {
    /* by parameter name, as the parameters (format 3): a change of registration order cannot
     * misalign them */
    write_list(file, "optimizer/exp_avg", opt->be, &m->param_list, opt->exp_avg);
    write_list(file, "optimizer/exp_avg_sq", opt->be, &m->param_list, opt->exp_avg_sq);
    h5_write_attr_double(file, "loss_scale", opt->scaler.scale);
    h5_write_attr_long(file, "loss_scale_good_steps", opt->scaler.good_steps);
    h5_write_attr_long(file, "skipped_steps", opt->skipped);
    h5_write_attr_long(file, "phase_skipped_steps", opt->phase_skipped);
  }
  H5_CHECK(H5Fflush(file, H5F_SCOPE_GLOBAL));
  H5_CHECK(H5Fclose(file));
  durable_rename(temporary, path);
}

static checkpoint_info read_info(hid_t file, const char *path) {
  checkpoint_info info;
  char arch_name[16];
  h5_read_attr_string(file, path, "arch", arch_name, sizeof arch_name);
  if (unet_arch_parse(arch_name, &info.arch) != 0)
    FP_FATAL("%s: attribute 'arch' is '%s', not one of " UNET_ARCH_WORDS, path, arch_name);
  info.classes = (int)h5_read_attr_long(file, path, "classes");
  info.height = (int)h5_read_attr_long(file, path, "height");
  info.width = (int)h5_read_attr_long(file, path, "width");
  info.step = h5_read_attr_long(file, path, "step");
  info.epoch = h5_read_attr_long(file, path, "epoch");
  info.best_metric = h5_read_attr_double(file, path, "best_metric");
  info.best_epoch =
      H5Aexists(file, "best_epoch") > 0 ? h5_read_attr_long(file, path, "best_epoch") : 0;
  int has_progress = H5Aexists(file, "global_batch") > 0;
  info.global_batch = has_progress ? h5_read_attr_long(file, path, "global_batch") : 0;
  info.epoch_loss_sum = has_progress ? h5_read_attr_double(file, path, "epoch_loss_sum") : 0.0;
  info.epoch_confusion = NULL;
  info.branches = (branch_config){BRANCHES_NONE, 0, 0.0f}; /* written before the branches */
  if (H5Aexists(file, "branches") > 0) {
    char mode[16];
    h5_read_attr_string(file, path, "branches", mode, sizeof mode);
    if (branch_mode_parse(mode, &info.branches.mode) != 0)
      FP_FATAL("%s: attribute 'branches' is '%s', not one of " BRANCH_MODE_WORDS, path, mode);
    info.branches.inject_blocks = (unsigned)h5_read_attr_long(file, path, "inject_blocks");
    info.branches.dropout = (float)h5_read_attr_double(file, path, "branch_dropout");
  }
  return info;
}

void checkpoint_save(const char *path, const unet *m, const optimizer *opt,
                     const checkpoint_info *info, const char *config_text,
                     const char *const *class_names) {
  hdf5_lock();
  save_locked(path, m, opt, info, config_text, class_names);
  hdf5_unlock();
}

checkpoint_info checkpoint_peek(const char *path) {
  hdf5_lock();
  hid_t file = h5_open_read(path);
  checkpoint_info info = read_info(file, path);
  H5Fclose(file);
  hdf5_unlock();
  return info;
}

static void read_flat(hid_t file, const char *path, const char *name, const backend *be,
                      float *data, size_t count) {
  float *host = fp_malloc(count * sizeof *host);
  if (h5_read_floats(file, path, name, host, count) != 0)
    FP_FATAL("%s: dataset %s is missing", path, name);
  be->upload(data, host, FP_F32, count);
  free(host);
}

static void read_list(hid_t file, const char *path, const char *group, const backend *be,
                      const tensor_list *list, float *data) {
  float *host = fp_malloc(list->total * sizeof *host);
  h5_read_tensor_list(file, path, group, list, host);
  be->upload(data, host, FP_F32, list->total);
  free(host);
}

/* Adam's moments: by name (format 3), or one flat array in parameter order (formats 1 and 2,
 * written before the order could change). */
static void read_moments(hid_t file, const char *path, const unet *m, optimizer *opt) {
  H5O_info_t object;
  int by_name = H5Lexists(file, "optimizer/exp_avg", H5P_DEFAULT) > 0 &&
                H5Oget_info_by_name(file, "optimizer/exp_avg", &object, H5P_DEFAULT) >= 0 &&
                object.type == H5O_TYPE_GROUP;
  if (by_name) {
    read_list(file, path, "optimizer/exp_avg", opt->be, &m->param_list, opt->exp_avg);
    read_list(file, path, "optimizer/exp_avg_sq", opt->be, &m->param_list, opt->exp_avg_sq);
  } else {
    read_flat(file, path, "optimizer/exp_avg", opt->be, opt->exp_avg, opt->count);
    read_flat(file, path, "optimizer/exp_avg_sq", opt->be, opt->exp_avg_sq, opt->count);
  }
}

/* The loss scaler's state and the skipped-step counts (absent before loss scaling: none
 * skipped). A scale that is not dynamic stays what the job file says. */
static void read_loss_scaling(hid_t file, const char *path, optimizer *opt) {
  if (H5Aexists(file, "skipped_steps") <= 0) return;
  opt->skipped = h5_read_attr_long(file, path, "skipped_steps");
  opt->phase_skipped = h5_read_attr_long(file, path, "phase_skipped_steps");
  if (!opt->scaler.dynamic) return;
  opt->scaler.scale = h5_read_attr_double(file, path, "loss_scale");
  opt->scaler.good_steps = h5_read_attr_long(file, path, "loss_scale_good_steps");
  FP_CHECK(loss_scale_valid(opt->scaler.scale),
           "%s: attribute loss_scale = %g is not a power of two in [%g, %g]", path,
           opt->scaler.scale, LOSS_SCALE_MIN, LOSS_SCALE_MAX);
}

static checkpoint_info load_locked(const char *path, unet *m, optimizer *opt,
                                   int64_t *epoch_confusion) {
  hid_t file = h5_open_read(path);
  checkpoint_info info = read_info(file, path);
  if (info.arch != m->arch)
    FP_FATAL("%s: checkpoint field 'arch' is %s but the model is %s", path,
             unet_arch_name(info.arch), unet_arch_name(m->arch));
  if (info.classes != m->classes)
    FP_FATAL("%s: checkpoint field 'classes' is %d but the model has %d classes", path,
             info.classes, m->classes);
  if (info.branches.mode != m->br.mode || info.branches.inject_blocks != m->br.inject_blocks)
    FP_FATAL("%s: checkpoint fields 'branches', 'inject_blocks' are %s, %u but the model's %s, %u",
             path, branch_mode_name(info.branches.mode), info.branches.inject_blocks,
             branch_mode_name(m->br.mode), m->br.inject_blocks);
  read_list(file, path, "params", m->be, &m->param_list, m->params);
  read_list(file, path, "buffers", m->be, &m->buffer_list, m->buffers);
  unet_weights_changed(m);
  if (opt) {
    read_moments(file, path, m, opt);
    opt->step = info.step;
    read_loss_scaling(file, path, opt);
  }
  if (epoch_confusion) {
    read_confusion(file, path, m->classes, epoch_confusion);
    info.epoch_confusion = epoch_confusion;
  }
  H5Fclose(file);
  return info;
}

checkpoint_info checkpoint_load(const char *path, unet *m, optimizer *opt,
                                int64_t *epoch_confusion) {
  hdf5_lock();
  checkpoint_info info = load_locked(path, m, opt, epoch_confusion);
  hdf5_unlock();
  return info;
}
