/* One-core read bandwidth and FMA peak: see scripts/measure_roofline.sh. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <immintrin.h>
static double now(){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+t.tv_nsec*1e-9;}
int main(){
  size_t sizes[]={1<<20, 5<<20, 20<<20, 256<<20};
  for(int s=0;s<4;s++){
    size_t n=sizes[s]/4; float*a=aligned_alloc(64,n*4); for(size_t i=0;i<n;i++)a[i]=i*1e-9f;
    size_t reps = (1ull<<31)/sizes[s]; if(reps<3)reps=3;
    __m256 acc[8]; for(int k=0;k<8;k++)acc[k]=_mm256_setzero_ps();
    double best=1e9;
    for(size_t r=0;r<reps;r++){ double t0=now();
      for(size_t i=0;i<n;i+=64){ for(int k=0;k<8;k++) acc[k]=_mm256_add_ps(acc[k],_mm256_load_ps(a+i+8*k)); }
      double dt=now()-t0; if(dt<best)best=dt; }
    float out[8]; __m256 t=acc[0]; for(int k=1;k<8;k++)t=_mm256_add_ps(t,acc[k]); _mm256_storeu_ps(out,t);
    printf("%6.1f MB: %.1f GB/s (best of %zu) %g\n", sizes[s]/1e6, sizes[s]/best/1e9, reps, out[0]);
    free(a);}
  // FMA peak: 10 independent chains
  __m256 x[10]; for(int k=0;k<10;k++)x[k]=_mm256_set1_ps(1.0f+k*1e-7f);
  __m256 m=_mm256_set1_ps(0.999999f), c=_mm256_set1_ps(1e-7f);
  long it=200000000; double t0=now();
  for(long i=0;i<it;i++){ for(int k=0;k<10;k++) x[k]=_mm256_fmadd_ps(x[k],m,c);} double dt=now()-t0;
  float o[8]; __m256 t=x[0]; for(int k=1;k<10;k++)t=_mm256_add_ps(t,x[k]); _mm256_storeu_ps(o,t);
  printf("FMA: %.1f GFLOP/s one core (%g)\n", it*10.0*16/dt/1e9, o[0]);
}
