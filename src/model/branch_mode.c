/* The job-file words of the Extended U-Net's branch modes (unet.h), apart from the branches'
 * code so that the job-file parser can use them without the model. */
#include <string.h>

#include "unet.h"

static const char *const mode_names[] = {"none", "trained", "injected"};

int branch_mode_parse(const char *name, branch_mode *mode) {
  for (size_t i = 0; i < sizeof mode_names / sizeof *mode_names; i++)
    if (!strcmp(name, mode_names[i])) {
      *mode = (branch_mode)i;
      return 0;
    }
  return -1;
}

const char *branch_mode_name(branch_mode mode) {
  return (size_t)mode < sizeof mode_names / sizeof *mode_names ? mode_names[mode] : "?";
}
