/* ESP-IDF stand-in: the 2nd stage bootloader's entry. On a chip it loads the partition table
 * and starts the factory app; on the host it only has to link. */
#include <stdint.h>
#include <stdio.h>
#include "sdkconfig.h"

static const char *const s_banner = "ESP-IDF " IDF_VER " 2nd stage bootloader";

static uint32_t partition_table_offset(void)
{
    return CONFIG_PARTITION_TABLE_OFFSET;
}

int main(void)
{
    printf("I (0) boot: %s\n", s_banner);
    printf("I (0) boot: partition table at 0x%x, target %s\n", (unsigned)partition_table_offset(),
           CONFIG_IDF_TARGET);
    return 0;
}
