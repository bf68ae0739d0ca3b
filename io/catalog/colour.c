#include "colour.h"

#include <math.h>
#include <pthread.h>

#include "check.h"

const colour_palette_entry colour_palette[COLOUR_PALETTE_SIZE] = {
    {"black", {0x1a, 0x1a, 0x1a}},    {"white", {0xf2, 0xf2, 0xf2}},
    {"grey", {0x8c, 0x8c, 0x8c}},     {"beige", {0xd9, 0xc7, 0xa7}},
    {"brown", {0x70, 0x47, 0x2a}},    {"red", {0xc1, 0x27, 0x2d}},
    {"burgundy", {0x6e, 0x1f, 0x2f}}, {"orange", {0xe6, 0x7e, 0x22}},
    {"yellow", {0xf1, 0xc4, 0x0f}},   {"green", {0x3e, 0x8e, 0x41}},
    {"olive", {0x7a, 0x7a, 0x35}},    {"teal", {0x1f, 0x8a, 0x8a}},
    {"blue", {0x2e, 0x64, 0xb5}},     {"navy", {0x1f, 0x2b, 0x4d}},
    {"purple", {0x6c, 0x34, 0x83}},   {"pink", {0xf1, 0x9c, 0xbb}},
};

static float linear_table[256];
static double palette_lab[COLOUR_PALETTE_SIZE][3];

static double srgb_unit_to_linear(double v) {
  return v <= 0.04045 ? v / 12.92 : pow((v + 0.055) / 1.055, 2.4);
}

static void build_tables(void) {
  for (int i = 0; i < 256; i++) linear_table[i] = (float)srgb_unit_to_linear(i / 255.0);
  for (int i = 0; i < COLOUR_PALETTE_SIZE; i++) {
    double linear[3];
    for (int c = 0; c < 3; c++) linear[c] = srgb_unit_to_linear(colour_palette[i].srgb[c] / 255.0);
    colour_linear_to_lab(linear, palette_lab[i]);
  }
}

static void ensure_tables(void) {
  static pthread_once_t once = PTHREAD_ONCE_INIT;
  FP_CHECK(pthread_once(&once, build_tables) == 0, "pthread_once failed");
}

float colour_srgb_to_linear(uint8_t value) {
  ensure_tables();
  return linear_table[value];
}

double colour_linear_to_srgb(double linear) {
  double v = linear <= 0.0031308 ? 12.92 * linear : 1.055 * pow(linear, 1.0 / 2.4) - 0.055;
  return 255.0 * v;
}

static double lab_f(double t) {
  const double delta = 6.0 / 29.0;
  return t > delta * delta * delta ? cbrt(t) : t / (3.0 * delta * delta) + 4.0 / 29.0;
}

void colour_linear_to_lab(const double linear[3], double lab[3]) {
  const double r = linear[0], g = linear[1], b = linear[2];
  double x = 0.4124564 * r + 0.3575761 * g + 0.1804375 * b;
  double y = 0.2126729 * r + 0.7151522 * g + 0.0721750 * b;
  double z = 0.0193339 * r + 0.1191920 * g + 0.9503041 * b;
  double fx = lab_f(x / 0.95047), fy = lab_f(y / 1.0), fz = lab_f(z / 1.08883);
  lab[0] = 116.0 * fy - 16.0;
  lab[1] = 500.0 * (fx - fy);
  lab[2] = 200.0 * (fy - fz);
}

/* Sharma, Wu and Dalal (2005), "The CIEDE2000 color-difference formula". */
static double ciede2000(const double lab1[3], const double lab2[3]) {
  const double pi = 3.14159265358979323846, deg = pi / 180.0;
  double c1 = hypot(lab1[1], lab1[2]), c2 = hypot(lab2[1], lab2[2]);
  double c_mean7 = pow((c1 + c2) / 2.0, 7.0);
  double g = 0.5 * (1.0 - sqrt(c_mean7 / (c_mean7 + pow(25.0, 7.0))));
  double a1 = (1.0 + g) * lab1[1], a2 = (1.0 + g) * lab2[1];
  double cp1 = hypot(a1, lab1[2]), cp2 = hypot(a2, lab2[2]);
  double h1 = (a1 == 0 && lab1[2] == 0) ? 0 : atan2(lab1[2], a1);
  double h2 = (a2 == 0 && lab2[2] == 0) ? 0 : atan2(lab2[2], a2);
  if (h1 < 0) h1 += 2 * pi;
  if (h2 < 0) h2 += 2 * pi;
  double dl = lab2[0] - lab1[0], dc = cp2 - cp1, dh = 0.0;
  if (cp1 * cp2 != 0) {
    dh = h2 - h1;
    if (dh > pi) dh -= 2 * pi;
    if (dh < -pi) dh += 2 * pi;
  }
  double dhh = 2.0 * sqrt(cp1 * cp2) * sin(dh / 2.0);
  double l_mean = (lab1[0] + lab2[0]) / 2.0, cp_mean = (cp1 + cp2) / 2.0;
  double h_mean = h1 + h2;
  if (cp1 * cp2 != 0) {
    if (fabs(h1 - h2) <= pi)
      h_mean = (h1 + h2) / 2.0;
    else
      h_mean = (h1 + h2 < 2 * pi) ? (h1 + h2 + 2 * pi) / 2.0 : (h1 + h2 - 2 * pi) / 2.0;
  }
  double t = 1.0 - 0.17 * cos(h_mean - 30 * deg) + 0.24 * cos(2 * h_mean) +
             0.32 * cos(3 * h_mean + 6 * deg) - 0.20 * cos(4 * h_mean - 63 * deg);
  double d_theta = 30 * deg * exp(-pow((h_mean / deg - 275.0) / 25.0, 2.0));
  double cp_mean7 = pow(cp_mean, 7.0);
  double rc = 2.0 * sqrt(cp_mean7 / (cp_mean7 + pow(25.0, 7.0)));
  double l50 = (l_mean - 50.0) * (l_mean - 50.0);
  double sl = 1.0 + 0.015 * l50 / sqrt(20.0 + l50);
  double sc = 1.0 + 0.045 * cp_mean, sh = 1.0 + 0.015 * cp_mean * t;
  double rt = -sin(2.0 * d_theta) * rc;
  double l_term = dl / sl, c_term = dc / sc, h_term = dhh / sh;
  return sqrt(l_term * l_term + c_term * c_term + h_term * h_term + rt * c_term * h_term);
}

void colour_palette_lab(int i, double lab[3]) {
  FP_CHECK(i >= 0 && i < COLOUR_PALETTE_SIZE, "colour palette entry %d", i);
  ensure_tables();
  for (int c = 0; c < 3; c++) lab[c] = palette_lab[i][c];
}

int colour_nearest(const double lab[3]) {
  ensure_tables();
  int best = 0;
  double best_distance = INFINITY;
  for (int i = 0; i < COLOUR_PALETTE_SIZE; i++) {
    double d = ciede2000(lab, palette_lab[i]);
    if (d < best_distance) {
      best_distance = d;
      best = i;
    }
  }
  return best;
}
