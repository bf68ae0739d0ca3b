/* A small valid photo for the ingest harnesses, whose annotations refer to one. */
#ifndef FP_HARNESS_PHOTO_H
#define FP_HARNESS_PHOTO_H

/* Writes a height x width RGB JPEG (a colour gradient) to fuzz_tmp_dir()/name. */
void fuzz_write_photo(const char *name, int height, int width);

#endif
