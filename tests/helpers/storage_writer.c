#include <stdio.h>
int main(void)
{
    fprintf(stderr, "borealis-log: not implemented yet\n");
    return 2;
}
