/* test_pretrained ARCH CLASSES INIT.h5 OUT.h5: builds a model (seed 1), loads INIT.h5 as
 * model.init does, and saves the result as a checkpoint for tests/pretrained_init.py to
 * compare with the weights it converted. */
#include <stdio.h>
#include <stdlib.h>

#include "backend.h"
#include "check.h"
#include "checkpoint.h"
#include "pretrained.h"
#include "test_backend.h"
#include "unet.h"

int main(int argc, char **argv) {
  if (argc != 5) {
    fprintf(stderr, "usage: %s ARCH CLASSES INIT.h5 OUT.h5\n", argv[0]);
    return 2;
  }
  unet_arch arch;
  FP_CHECK(unet_arch_parse(argv[1], &arch) == 0, "arch %s", argv[1]);
  unet_config config = {.arch = arch,
                        .classes = atoi(argv[2]),
                        .batch = 1,
                        .height = 64,
                        .width = 64,
                        .compute = FP_F32,
                        .mode = UNET_INFERENCE};
  unet *m = unet_create(test_backend(), &config, 1);
  pretrained_report report = unet_load_pretrained(m, argv[3], stdout);
  checkpoint_info info = {.arch = arch, .classes = m->classes, .height = 64, .width = 64};
  checkpoint_save(argv[4], m, NULL, &info, "", NULL);
  printf("report loaded=%d missing=%d unexpected=%d\n", report.loaded, report.missing,
         report.unexpected);
  unet_destroy(m);
  return 0;
}
