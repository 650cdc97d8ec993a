from django.urls import path

from generation import dashboard

app_name = "dashboard"

urlpatterns = [
    path("", dashboard.overview, name="overview"),
    path("projects/", dashboard.project_list, name="projects"),
    path("projects/<int:project_id>/", dashboard.project_detail, name="project"),
    path("projects/<int:project_id>/events", dashboard.project_events, name="project-events"),
    path("jobs/", dashboard.job_list, name="jobs"),
    path("jobs/<int:job_id>/", dashboard.job_detail, name="job"),
    path("jobs/<int:job_id>/retry", dashboard.job_retry, name="job-retry"),
    path("jobs/<int:job_id>/cancel", dashboard.job_cancel, name="job-cancel"),
    path("spend/", dashboard.spend, name="spend"),
]
