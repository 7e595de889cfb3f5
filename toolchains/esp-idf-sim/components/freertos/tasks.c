/* ESP-IDF stand-in: a host implementation of the task API (tasks run to completion inline). */
#include <time.h>
#include "freertos/FreeRTOS.h"
#include "freertos/task.h"

static TickType_t s_ticks;

BaseType_t xTaskCreatePinnedToCore(TaskFunction_t pxTaskCode, const char *const pcName,
                                   const uint32_t usStackDepth, void *const pvParameters,
                                   UBaseType_t uxPriority, TaskHandle_t *const pxCreatedTask,
                                   const BaseType_t xCoreID)
{
    (void)pcName;
    (void)usStackDepth;
    (void)uxPriority;
    (void)xCoreID;
    if (pxCreatedTask) {
        *pxCreatedTask = NULL;
    }
    pxTaskCode(pvParameters);
    return pdPASS;
}

BaseType_t xTaskCreate(TaskFunction_t pxTaskCode, const char *const pcName, const uint32_t usStackDepth,
                       void *const pvParameters, UBaseType_t uxPriority, TaskHandle_t *const pxCreatedTask)
{
    return xTaskCreatePinnedToCore(pxTaskCode, pcName, usStackDepth, pvParameters, uxPriority,
                                   pxCreatedTask, tskNO_AFFINITY);
}

void vTaskDelay(const TickType_t xTicksToDelay)
{
    struct timespec ts = {
        .tv_sec = (time_t)(xTicksToDelay / configTICK_RATE_HZ),
        .tv_nsec = (long)(xTicksToDelay % configTICK_RATE_HZ) * (1000000000L / configTICK_RATE_HZ),
    };
    nanosleep(&ts, NULL);
    s_ticks += xTicksToDelay;
}

void vTaskDelete(TaskHandle_t xTaskToDelete)
{
    (void)xTaskToDelete;
}

TickType_t xTaskGetTickCount(void)
{
    return s_ticks;
}
