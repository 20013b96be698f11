/* Prints plain text rather than JSON: weir stores it as {"body": "<text>"}. */
#include <stdio.h>

int main(void) {
    puts("just some text");
    return 0;
}
