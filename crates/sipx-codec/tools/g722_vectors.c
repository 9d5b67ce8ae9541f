/*
 * Generates the G.722 test vectors for sipx-codec with spandsp, an independent implementation.
 * Not built by cargo: see README.md in this folder for how to build and run it.
 *
 * For each signal it writes, into the output folder:
 *   NAME.pcm      the input, 16-bit little-endian PCM (16 kHz, or 8 kHz for *_8k signals)
 *   NAME.g722     spandsp's 64 kbit/s encoding of it, one byte per 16 kHz sample pair
 *   NAME.dec.pcm  spandsp's decoding of NAME.g722 (same rate as the input)
 * plus random.g722 / random.dec.pcm: arbitrary code bytes, so the decoder also meets codes an
 * encoder never emits.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <spandsp.h>

#define MAX_SAMPLES (16000 * 3)

static uint32_t rng_state = 0x2545F491u;

/* xorshift32: a fixed, portable sequence so the vectors can be regenerated identically. */
static uint32_t next_random(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 17;
    rng_state ^= rng_state << 5;
    return rng_state;
}

/* Uniform in [-1, 1). */
static double random_unit(void)
{
    return (double) next_random() / 2147483648.0 - 1.0;
}

static int16_t clamp16(double v)
{
    if (v > 32767.0)
        return 32767;
    if (v < -32768.0)
        return -32768;
    return (int16_t) lrint(v);
}

/* Logarithmic chirp from 50 Hz to just under half the sample rate. */
static int make_sweep(int16_t *out, int rate, int n)
{
    double phase = 0.0;
    double f0 = 50.0;
    double f1 = rate * 0.47;
    for (int i = 0; i < n; i++) {
        double f = f0 * pow(f1 / f0, (double) i / n);
        phase += 2.0 * M_PI * f / rate;
        out[i] = clamp16(14000.0 * sin(phase));
    }
    return n;
}

/*
 * Speech-like: a glottal pulse train (pitch gliding 100-220 Hz) mixed with noise, shaped by two
 * resonators (formants) and a syllable-rate envelope with pauses.
 */
static int make_speech(int16_t *out, int rate, int n)
{
    static double shaped[MAX_SAMPLES];
    double peak = 1e-9;
    double y1[2] = {0, 0}, y2[2] = {0, 0};
    double formant[2] = {700.0, 1800.0};
    double pitch_phase = 0.0;
    for (int i = 0; i < n; i++) {
        double t = (double) i / rate;
        double pitch = 160.0 + 60.0 * sin(2.0 * M_PI * 0.7 * t);
        pitch_phase += pitch / rate;
        double excitation = 0.3 * random_unit();
        if (pitch_phase >= 1.0) {
            pitch_phase -= 1.0;
            excitation += 6.0;
        }
        double x = excitation;
        for (int k = 0; k < 2; k++) {
            double f = formant[k] * (1.0 + 0.3 * sin(2.0 * M_PI * (1.3 + k) * t));
            double r = 0.97;
            double a1 = 2.0 * r * cos(2.0 * M_PI * f / rate);
            double a2 = -r * r;
            double y = x + a1 * y1[k] + a2 * y2[k];
            y2[k] = y1[k];
            y1[k] = y;
            x = y * (1.0 - r);
        }
        double envelope = sin(2.0 * M_PI * 2.5 * t);
        envelope = envelope > 0.0 ? envelope : 0.02;
        shaped[i] = envelope * x;
        peak = fmax(peak, fabs(shaped[i]));
    }
    /* Normalise to a peak of about -4 dBFS, a loud talker. */
    for (int i = 0; i < n; i++)
        out[i] = clamp16(20000.0 * shaped[i] / peak);
    return n;
}

static int make_silence(int16_t *out, int rate, int n)
{
    (void) rate;
    memset(out, 0, n * sizeof(out[0]));
    return n;
}

/* Full-scale material: a clipped square wave, then loud white noise, to reach the saturations. */
static int make_loud(int16_t *out, int rate, int n)
{
    for (int i = 0; i < n; i++) {
        if (i < n / 2)
            out[i] = ((i * 440 * 2 / rate) & 1) ? 32767 : -32768;
        else
            out[i] = clamp16(40000.0 * random_unit());
    }
    return n;
}

static void write_file(const char *dir, const char *name, const char *ext, const void *data, size_t len)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/%s%s", dir, name, ext);
    FILE *f = fopen(path, "wb");
    if (f == NULL || fwrite(data, 1, len, f) != len) {
        perror(path);
        exit(1);
    }
    fclose(f);
}

/* The vectors are little-endian; this harness runs on little-endian hosts only. */
static void write_pcm(const char *dir, const char *name, const char *ext, const int16_t *pcm, int n)
{
    write_file(dir, name, ext, pcm, n * sizeof(pcm[0]));
}

static void round_trip(const char *dir, const char *name, int rate, int seconds_x10,
                       int (*make)(int16_t *, int, int))
{
    static int16_t pcm[MAX_SAMPLES], decoded[MAX_SAMPLES];
    static uint8_t code[MAX_SAMPLES];
    int options = rate == 8000 ? G722_SAMPLE_RATE_8000 : 0;
    int n = make(pcm, rate, rate * seconds_x10 / 10);

    g722_encode_state_t *enc = g722_encode_init(NULL, 64000, options);
    int bytes = g722_encode(enc, code, pcm, n);
    g722_encode_free(enc);

    g722_decode_state_t *dec = g722_decode_init(NULL, 64000, options);
    int samples = g722_decode(dec, decoded, code, bytes);
    g722_decode_free(dec);

    write_pcm(dir, name, ".pcm", pcm, n);
    write_file(dir, name, ".g722", code, bytes);
    write_pcm(dir, name, ".dec.pcm", decoded, samples);
    printf("%-10s %6d samples -> %5d bytes -> %6d samples\n", name, n, bytes, samples);
}

static void decode_random(const char *dir)
{
    static int16_t decoded[MAX_SAMPLES];
    static uint8_t code[8000];
    for (size_t i = 0; i < sizeof(code); i++)
        code[i] = (uint8_t) (next_random() >> 24);
    g722_decode_state_t *dec = g722_decode_init(NULL, 64000, 0);
    int samples = g722_decode(dec, decoded, code, sizeof(code));
    g722_decode_free(dec);
    write_file(dir, "random", ".g722", code, sizeof(code));
    write_pcm(dir, "random", ".dec.pcm", decoded, samples);
    printf("%-10s %6d bytes -> %6d samples\n", "random", (int) sizeof(code), samples);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s OUTPUT_DIR\n", argv[0]);
        return 2;
    }
    const char *dir = argv[1];
    round_trip(dir, "sweep", 16000, 10, make_sweep);
    round_trip(dir, "speech", 16000, 20, make_speech);
    round_trip(dir, "silence", 16000, 5, make_silence);
    round_trip(dir, "loud", 16000, 5, make_loud);
    round_trip(dir, "speech_8k", 8000, 10, make_speech);
    decode_random(dir);
    return 0;
}
